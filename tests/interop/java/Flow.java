// The end-to-end flow through a client that wsimport generated from the live
// /soap?wsdl, with no hand edits: Eco -> AltaFactura -> ConsultarDeuda -> InformarPago
// (with idConsulta) -> replay -> ConsultarDeuda answers 2 -> ConsultarPago, plus a
// typed fault.
//
// Usage: java Flow <wsdl-url> <idCliente>    (exit status 0 = every check passed)

import java.math.BigDecimal;
import java.net.URL;
import java.time.LocalDate;
import java.time.ZoneId;
import java.util.GregorianCalendar;
import javax.xml.datatype.DatatypeFactory;
import javax.xml.datatype.XMLGregorianCalendar;
import javax.xml.ws.Holder;

import org.pmcadapter.client.*;

public class Flow {
    private static int checks = 0;

    private static void check(boolean condition, String what) {
        if (!condition) {
            System.err.println("FAILED: " + what);
            System.exit(1);
        }
        checks++;
        System.out.println("ok: " + what);
    }

    public static void main(String[] args) throws Exception {
        ServicioEmpresa port = new ServicioEmpresa_Service(new URL(args[0])).getServicioEmpresaSoap11();
        String customer = args[1];
        String invoice = "J-0001";
        DatatypeFactory types = DatatypeFactory.newInstance();
        LocalDate today = LocalDate.now(ZoneId.of("America/Argentina/Buenos_Aires"));

        Holder<String> echoed = new Holder<>("hola");
        Holder<XMLGregorianCalendar> serverTime = new Holder<>();
        port.eco(echoed, serverTime);
        check("hola".equals(echoed.value) && serverTime.value != null
              && serverTime.value.getTimezone() != javax.xml.datatype.DatatypeConstants.FIELD_UNDEFINED,
              "Eco echoes the message with the server time and its offset");

        Vencimientos dueDates = new Vencimientos();
        Vencimiento first = new Vencimiento();
        first.setFecha(types.newXMLGregorianCalendar(today.plusDays(10).toString()));
        first.setImporte(new BigDecimal("1500.25"));
        dueDates.getVencimiento().add(first);
        Holder<Integer> code = new Holder<>();
        port.altaFactura("1234", customer, invoice, Moneda.ARS, dueDates,
                         new Holder<>("Cuota Java"), null, null, code);
        check(code.value == 0, "AltaFactura answers 0");

        Holder<String> description = new Holder<>();
        Holder<String> queryId = new Holder<>();
        Holder<Facturas> invoices = new Holder<>();
        port.consultarDeuda("1234", customer, null, code, description, queryId, invoices);
        check(code.value == 0, "ConsultarDeuda answers 0");
        check(invoices.value.getFactura().size() == 1, "one invoice listed");
        Factura listed = invoices.value.getFactura().get(0);
        check(listed.getImporteAPagar().compareTo(new BigDecimal("1500.25")) == 0,
              "importeAPagar is 1500.25");
        check(listed.getOrigen() == Origen.ALTA, "origen is ALTA");

        XMLGregorianCalendar paidAt = types.newXMLGregorianCalendar(
            GregorianCalendar.from(today.atStartOfDay(ZoneId.of("America/Argentina/Buenos_Aires"))));
        String operation = "JAVA-" + customer;
        Holder<String> receipt = new Holder<>();
        port.informarPago("1234", operation, customer, invoice, new BigDecimal("1500.25"), Moneda.ARS,
                          paidAt, "JAVA", queryId.value, code, description, receipt);
        check(code.value == 0, "InformarPago answers 0");
        String firstReceipt = receipt.value;

        port.informarPago("1234", operation, customer, invoice, new BigDecimal("1500.25"), Moneda.ARS,
                          paidAt, "JAVA", queryId.value, code, description, receipt);
        check(code.value == 0 && firstReceipt.equals(receipt.value), "a replay gets the first answer");

        port.consultarDeuda("1234", customer, null, code, description, queryId, invoices);
        check(code.value == 2, "ConsultarDeuda answers 2 once paid");

        Holder<EstadoPago> state = new Holder<>();
        Holder<Integer> noticeCode = new Holder<>();
        Holder<BigDecimal> amount = new Holder<>();
        Holder<Moneda> currency = new Holder<>();
        Holder<XMLGregorianCalendar> paidAtStored = new Holder<>();
        port.consultarPago("1234", operation, code, description, state, noticeCode, receipt,
                           amount, currency, paidAtStored);
        check(code.value == 0 && state.value == EstadoPago.APLICADO && noticeCode.value == 0
              && firstReceipt.equals(receipt.value)
              && amount.value.compareTo(new BigDecimal("1500.25")) == 0,
              "ConsultarPago reports the payment applied, with its receipt");
        port.consultarPago("1234", "NONE-" + customer, code, description, state, noticeCode,
                           receipt, amount, currency, paidAtStored);
        check(code.value == 8, "ConsultarPago answers 8 for an unknown operation");

        try {
            port.consultarDeuda("9999", customer, null, code, description, queryId, invoices);
            check(false, "an unserved idEmpresa is a fault");
        } catch (Falla_Exception fault) {
            check("Client.UnknownEmpresa".equals(fault.getFaultInfo().getCodigo()),
                  "an unserved idEmpresa is a typed falla (Client.UnknownEmpresa)");
        }
        System.out.println("JAVA FLOW PASSED: " + checks + " checks");
    }
}
