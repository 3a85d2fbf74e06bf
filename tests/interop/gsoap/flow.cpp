// The end-to-end flow through a gSOAP C++ client that wsdl2h generated from the
// live /soap?wsdl (and soapcpp2 from wsdl2h's header), with no hand edits:
// ConsultarDeuda of a client with an open invoice -> AltaFactura ->
// ConsultarDeuda (idConsulta) -> InformarPago -> replay -> paying the other
// invoice -> ConsultarDeuda answers 2, plus the typed fault of an unserved biller.
//
// The test seeds the open invoice in the billing base: B-0001, due today+5 at
// 2750.40 then today+35 at 2890.00 (so 2750.40 is due today).
//
// The endpoint is the one wsdl2h read from the WSDL's soap:address.
//
// Usage: flow <idCliente> <today: YYYY-MM-DD in Buenos Aires>
// (exit status 0 = every check passed)
//
// Built with typemap.dat (prefix pmc for the contract's namespace) and
// soapcpp2 -j (proxy class with a soap context member).

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "soapServicioEmpresaSoap11Proxy.h"
#include "ServicioEmpresaSoap11.nsmap"

static int checks = 0;

static void check(bool condition, const std::string &what) {
    if (!condition) {
        std::fprintf(stderr, "FAILED: %s\n", what.c_str());
        std::exit(1);
    }
    checks++;
    std::printf("ok: %s\n", what.c_str());
}

// A transport or protocol error (not a business code) ends the run, with gSOAP's account.
static void call_ok(ServicioEmpresaSoap11Proxy &proxy, int status, const std::string &what) {
    if (status != SOAP_OK) {
        std::fprintf(stderr, "FAILED: %s: gSOAP error %d\n", what.c_str(), status);
        proxy.soap_print_fault(stderr);
        std::exit(1);
    }
}

// YYYY-MM-DD plus some days (calendar arithmetic in UTC, no time zone involved).
static std::string plus_days(const std::string &day, int days) {
    struct tm parts = {};
    if (std::sscanf(day.c_str(), "%d-%d-%d", &parts.tm_year, &parts.tm_mon, &parts.tm_mday) != 3) {
        std::fprintf(stderr, "FAILED: bad date %s\n", day.c_str());
        std::exit(2);
    }
    parts.tm_year -= 1900;
    parts.tm_mon -= 1;
    time_t moment = timegm(&parts) + static_cast<time_t>(days) * 86400;
    char text[11];
    std::strftime(text, sizeof text, "%Y-%m-%d", gmtime_r(&moment, &parts));
    return text;
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        std::fprintf(stderr, "usage: %s <idCliente> <today> [<endpoint>]\n", argv[0]);
        return 2;
    }
    const std::string customer = argv[1], today = argv[2];
    // SOAP_XML_STRICT: gSOAP also checks the answers against the types wsdl2h
    // generated (required elements, occurrences, lengths, enumerations).
    ServicioEmpresaSoap11Proxy proxy(SOAP_XML_STRICT);
    if (argc == 4) {  // another server than the one whose WSDL it was generated from
        proxy.soap_endpoint = argv[3];
    }
    struct soap *ctx = proxy.soap;

    // 1. ConsultarDeuda of a client with an open invoice (seeded by the test).
    pmc__ConsultarDeudaSolicitud query;
    query.idEmpresa = "1234";
    query.idCliente = customer;
    pmc__ConsultarDeudaRespuesta debt;
    call_ok(proxy, proxy.ConsultarDeuda(&query, debt), "ConsultarDeuda");
    std::printf("endpoint: %s\n", proxy.soap_endpoint);  // the generated default, or argv[3]
    check(debt.codigoRespuesta == pmc__CodigoRespuesta__0, "ConsultarDeuda answers 0");
    check(debt.facturas && debt.facturas->factura.size() == 1, "one invoice listed");
    const pmc__Factura *base = debt.facturas->factura[0];
    check(base->idFactura == "B-0001" && base->origen == pmc__Origen__BASE,
          "it is B-0001 from the billing base");
    check(base->importeAPagar == "2750.40", "importeAPagar is 2750.40 (the first due date)");
    check(base->vencimientos && base->vencimientos->vencimiento.size() == 2 &&
          base->vencimientos->vencimiento[0]->fecha == plus_days(today, 5),
          "both due dates listed, the first on today+5");

    // 2. AltaFactura creates an invoice.
    const std::string invoice = "G-0001";
    pmc__Vencimientos due_dates;
    due_dates.vencimiento.push_back(
        soap_new_set_pmc__Vencimiento(ctx, plus_days(today, 10), "1500.25"));
    std::string description = "Cuota gSOAP";
    pmc__AltaFacturaSolicitud creation;
    creation.idEmpresa = "1234";
    creation.idCliente = customer;
    creation.idFactura = invoice;
    creation.moneda = pmc__Moneda__ARS;
    creation.vencimientos = &due_dates;
    creation.descripcion = &description;
    pmc__AltaFacturaRespuesta created;
    call_ok(proxy, proxy.AltaFactura(&creation, created), "AltaFactura");
    check(created.codigoRespuesta == pmc__CodigoRespuesta__0, "AltaFactura answers 0");

    // 3. ConsultarDeuda of that invoice: its amount, and the idConsulta to pay with.
    std::string invoice_id = invoice;
    query.idFactura = &invoice_id;
    call_ok(proxy, proxy.ConsultarDeuda(&query, debt), "ConsultarDeuda G-0001");
    check(debt.codigoRespuesta == pmc__CodigoRespuesta__0 && debt.facturas &&
          debt.facturas->factura.size() == 1 && debt.facturas->factura[0]->idFactura == invoice &&
          debt.facturas->factura[0]->origen == pmc__Origen__ALTA,
          "ConsultarDeuda of G-0001 answers 0 with it (origen ALTA)");
    check(debt.facturas->factura[0]->importeAPagar == "1500.25", "importeAPagar is 1500.25");
    std::string query_id = debt.idConsulta;
    check(!query_id.empty(), "an idConsulta");

    // 4. InformarPago of it, dated now (time_t: gSOAP sends it in UTC, with Z).
    std::string channel = "GSOAP";
    pmc__InformarPagoSolicitud payment;
    payment.idEmpresa = "1234";
    payment.idOperacion = "GSOAP-" + customer;
    payment.idCliente = customer;
    payment.idFactura = invoice;
    payment.importe = "1500.25";
    payment.moneda = pmc__Moneda__ARS;
    payment.fechaPago = std::time(nullptr);
    payment.canal = &channel;
    payment.idConsulta = &query_id;
    pmc__InformarPagoRespuesta paid;
    call_ok(proxy, proxy.InformarPago(&payment, paid), "InformarPago");
    check(paid.codigoRespuesta == pmc__CodigoRespuesta__0, "InformarPago answers 0");
    const std::string receipt = paid.idRecibo;
    check(!receipt.empty(), "an idRecibo");

    // 5. A replay gets the first answer.
    call_ok(proxy, proxy.InformarPago(&payment, paid), "InformarPago replay");
    check(paid.codigoRespuesta == pmc__CodigoRespuesta__0 && paid.idRecibo == receipt,
          "a replay gets the first answer (same idRecibo)");

    // 6. Paying the billing-base invoice too leaves nothing owed.
    payment.idOperacion = "GSOAP-B-" + customer;
    payment.idFactura = "B-0001";
    payment.importe = "2750.40";
    payment.idConsulta = nullptr;
    call_ok(proxy, proxy.InformarPago(&payment, paid), "InformarPago B-0001");
    check(paid.codigoRespuesta == pmc__CodigoRespuesta__0 && paid.idRecibo != receipt,
          "InformarPago of B-0001 answers 0 with another idRecibo");
    query.idFactura = nullptr;
    call_ok(proxy, proxy.ConsultarDeuda(&query, debt), "ConsultarDeuda once paid");
    check(debt.codigoRespuesta == pmc__CodigoRespuesta__2, "ConsultarDeuda answers 2 once paid");

    // 7. An unserved biller: a SOAP fault whose detail is the contract's falla.
    query.idEmpresa = "9999";
    int status = proxy.ConsultarDeuda(&query, debt);
    check(status == SOAP_FAULT, "an unserved idEmpresa is a SOAP fault");
    const SOAP_ENV__Fault *fault = proxy.soap_fault();
    const std::string fault_code = fault && fault->faultcode ? fault->faultcode : "";
    const std::string suffix = "Client.UnknownEmpresa";
    check(fault_code.size() > suffix.size() &&
          fault_code.compare(fault_code.size() - suffix.size(), suffix.size(), suffix) == 0,
          "faultcode ends in Client.UnknownEmpresa (" + fault_code + ")");
    check(fault->detail && fault->detail->pmc__falla &&
          fault->detail->pmc__falla->codigo == suffix,
          "the detail is a typed falla (codigo Client.UnknownEmpresa)");

    proxy.destroy();
    std::printf("GSOAP FLOW PASSED: %d checks\n", checks);
    return 0;
}
