"""AltaFactura: the biller's web/app creates invoices that PMC can then find."""
from datetime import timedelta
from decimal import Decimal

import pytest
from zeep.exceptions import Fault

from support.data import today, unique


def alta(client, customer, invoice_id, *due, currency="ARS", **extra):
    return client.service.AltaFactura(
        idEmpresa="1234", idCliente=customer, idFactura=invoice_id, moneda=currency,
        vencimientos={"vencimiento": [{"fecha": on, "importe": amount} for on, amount in due]},
        **extra)


def test_created_invoice_is_found_by_pmc_with_its_terms(client, db):
    customer, day = unique("C"), today()
    answer = alta(client, customer, "F-1", (day, "100.00"), (day + timedelta(10), "110.00"),
                  (day + timedelta(20), "125.50"), descripcion="Cuota noviembre",
                  mensajeTicket="Gracias", mensajePantalla="Cuota 11")
    assert (answer.codigoRespuesta, answer.descripcion) == (0, "OK")

    debt = client.service.ConsultarDeuda(idEmpresa="1234", idCliente=customer)
    (factura,) = debt.facturas.factura
    assert factura.idFactura == "F-1" and factura.origen == "ALTA"
    assert factura.descripcion == "Cuota noviembre"
    assert [(v.fecha, v.importe) for v in factura.vencimientos.vencimiento] == [
        (day, Decimal("100.00")), (day + timedelta(10), Decimal("110.00")),
        (day + timedelta(20), Decimal("125.50"))]
    assert factura.importeAPagar == Decimal("100.00")
    row = db.rows("SELECT ticket_message, screen_message FROM invoices WHERE customer_id = :c",
                  c=customer)
    assert row == [("Gracias", "Cuota 11")]


def test_identical_resend_is_a_no_op(client, db):
    customer, day = unique("C"), today()
    assert alta(client, customer, "F-1", (day, "10.00")).codigoRespuesta == 0
    before = db.rows("SELECT pk, updated_at FROM invoices WHERE customer_id = :c", c=customer)
    assert alta(client, customer, "F-1", (day, "10.00")).codigoRespuesta == 0
    assert db.rows("SELECT pk, updated_at FROM invoices WHERE customer_id = :c",
                   c=customer) == before


def test_unpaid_invoice_is_replaced(client, db):
    customer, day = unique("C"), today()
    alta(client, customer, "F-1", (day, "10.00"))
    assert alta(client, customer, "F-1", (day + timedelta(5), "12.00"),
                currency="USD").codigoRespuesta == 0
    debt = client.service.ConsultarDeuda(idEmpresa="1234", idCliente=customer)
    (factura,) = debt.facturas.factura
    assert (factura.moneda, factura.importeAPagar) == ("USD", Decimal("12.00"))
    assert db.count("invoices", customer_id=customer) == 1


def test_paid_invoice_is_not_changed(client, db):
    customer, day = unique("C"), today()
    alta(client, customer, "F-1", (day, "10.00"))
    paid = client.service.InformarPago(
        idEmpresa="1234", idOperacion=unique("OP"), idCliente=customer, idFactura="F-1",
        importe="10.00", moneda="ARS", fechaPago=f"{day.isoformat()}T00:00:00-03:00")
    assert paid.codigoRespuesta == 0
    answer = alta(client, customer, "F-1", (day, "99.00"))
    assert (answer.codigoRespuesta, answer.descripcion) == (4, "Factura ya pagada")
    assert db.rows("SELECT amount_1, status FROM invoices WHERE customer_id = :c",
                   c=customer)[0][1] == "paid"


def test_invoice_already_past_its_last_due_date_is_refused_as_expired(client, db):
    customer = unique("C")
    answer = alta(client, customer, "F-1", (today() - timedelta(1), "10.00"))
    assert (answer.codigoRespuesta, answer.descripcion) == (5, "Factura vencida")
    assert db.count("invoices", customer_id=customer) == 0


def test_due_dates_out_of_order_are_a_client_fault_and_store_nothing(client, db):
    customer, day = unique("C"), today()
    with pytest.raises(Fault) as fault:
        alta(client, customer, "F-1", (day + timedelta(5), "10.00"), (day, "12.00"))
    assert fault.value.code.endswith("Client.InvalidInvoice")
    assert "ascending" in fault.value.message
    assert db.count("invoices", customer_id=customer) == 0


def test_same_invoice_id_for_two_clients_are_two_invoices(client, db):
    first, second, day = unique("C"), unique("C"), today()
    alta(client, first, "SHARED", (day, "1.00"))
    alta(client, second, "SHARED", (day, "2.00"))
    assert db.count("invoices", invoice_id="SHARED", customer_id=first) == 1
    assert db.count("invoices", invoice_id="SHARED", customer_id=second) == 1
