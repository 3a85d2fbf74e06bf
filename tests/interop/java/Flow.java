// The end-to-end flow through a client that wsimport generated from the live
// /soap?wsdl, with no hand edits: Eco -> AltaFactura -> ConsultarDeuda -> InformarPago
// (with idConsulta) -> replay -> ConsultarDeuda answers 2 -> ConsultarPago -> AnularPago
// (0, replay, 7) -> ConsultarPago ANULADO -> the invoice paid again -> AnularPago 10 and
// 8, plus a typed fault.
//
// Usage: java Flow <wsdl-url> <idCliente>    (exit status 0 = every check passed)

import java.math.BigDecimal;
import java.net.URL;
import java.time.LocalDate;
import java.time.ZoneId;
import java.time.ZonedDateTime;
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

        // AnularPago: the payment above is reversed on its business day
        ZoneId buenosAires = ZoneId.of("America/Argentina/Buenos_Aires");
        XMLGregorianCalendar reversedAt = types.newXMLGregorianCalendar(
            GregorianCalendar.from(ZonedDateTime.now(buenosAires)));
        Holder<String> reversalId = new Holder<>();
        port.anularPago("1234", operation, customer, invoice, new BigDecimal("1500.25"), Moneda.ARS,
                        reversedAt, "Desconocido por el pagador", code, description, reversalId);
        check(code.value == 0 && reversalId.value != null && !reversalId.value.isEmpty(),
              "AnularPago answers 0 with an idAnulacion");
        String firstReversal = reversalId.value;
        reversalId.value = null;
        port.anularPago("1234", operation, customer, invoice, new BigDecimal("1500.25"), Moneda.ARS,
                        reversedAt, "Desconocido por el pagador", code, description, reversalId);
        check(code.value == 0 && firstReversal.equals(reversalId.value),
              "a replayed AnularPago gets the first answer and idAnulacion");
        reversalId.value = null;
        port.anularPago("1234", operation, customer, invoice, new BigDecimal("1500.25"), Moneda.ARS,
                        reversedAt, "Otro motivo", code, description, reversalId);
        check(code.value == 7 && firstReversal.equals(reversalId.value),
              "an AnularPago replay with another motivo answers 7 with the first idAnulacion");

        port.consultarPago("1234", operation, code, description, state, noticeCode, receipt,
                           amount, currency, paidAtStored);
        check(code.value == 0 && state.value == EstadoPago.ANULADO && noticeCode.value == 0
              && firstReceipt.equals(receipt.value),
              "ConsultarPago reports the payment ANULADO, its notice answered 0");
        port.consultarDeuda("1234", customer, null, code, description, queryId, invoices);
        check(code.value == 0 && invoices.value.getFactura().size() == 1
              && invoice.equals(invoices.value.getFactura().get(0).getIdFactura()),
              "ConsultarDeuda lists the invoice again once its payment is reversed");

        String again = "JAVA-B-" + customer;
        port.informarPago("1234", again, customer, invoice, new BigDecimal("1500.25"), Moneda.ARS,
                          paidAt, "JAVA", null, code, description, receipt);
        check(code.value == 0 && !firstReceipt.equals(receipt.value),
              "a new idOperacion pays the invoice again");
        reversalId.value = null;
        port.anularPago("1234", again, customer, invoice, new BigDecimal("1500.00"), Moneda.ARS,
                        reversedAt, null, code, description, reversalId);
        check(code.value == 10 && reversalId.value == null,
              "AnularPago with another importe answers 10, without idAnulacion");
        port.consultarPago("1234", again, code, description, state, noticeCode, receipt,
                           amount, currency, paidAtStored);
        check(code.value == 0 && state.value == EstadoPago.APLICADO,
              "the payment a refused reversal named stays APLICADO");

        reversalId.value = null;
        port.anularPago("1234", "NONE-" + customer, customer, invoice, new BigDecimal("1500.25"),
                        Moneda.ARS, reversedAt, null, code, description, reversalId);
        check(code.value == 8 && reversalId.value != null && !reversalId.value.isEmpty(),
              "AnularPago of an unknown operation answers 8, kept with an idAnulacion");

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
