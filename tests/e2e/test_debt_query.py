"""ConsultarDeuda: what PMC is told a client owes."""
from datetime import timedelta
from decimal import Decimal

from adapter.domain.model import Currency, DueDate, Invoice, Origin
from support.data import today, unique


def base_invoice(customer, invoice_id, *due, paid=False, biller="1234"):
    return Invoice(biller, customer, invoice_id, Currency.ARS,
                   tuple(DueDate(on, Decimal(amount)) for on, amount in due),
                   Origin.BILLING_BASE, description=f"Factura {invoice_id}", paid=paid)


def ask(client, customer, invoice_id=None, biller="1234"):
    return client.service.ConsultarDeuda(idEmpresa=biller, idCliente=customer,
                                         idFactura=invoice_id)


def test_unknown_client_answers_1(client):
    answer = ask(client, unique("NOBODY"))
    assert (answer.codigoRespuesta, answer.descripcion) == (1, "Cliente inexistente")
    assert not answer.facturas


def test_client_with_only_paid_or_expired_invoices_answers_2(client, billing_base):
    customer, day = unique("C"), today()
    billing_base(base_invoice(customer, "PAID", (day, "10"), paid=True))
    billing_base(base_invoice(customer, "OLD", (day - timedelta(1), "10")))
    answer = ask(client, customer)
    assert (answer.codigoRespuesta, answer.descripcion) == (2, "El cliente no registra deuda")
    assert not answer.facturas


def test_open_invoices_are_listed_with_the_amount_due_today(client, billing_base):
    customer, day = unique("C"), today()
    billing_base(base_invoice(customer, "LATER", (day + timedelta(20), "300.00")))
    billing_base(base_invoice(customer, "SOON", (day - timedelta(2), "100.00"),
                              (day + timedelta(3), "104.99")))
    billing_base(base_invoice(customer, "PAID", (day, "10"), paid=True))
    answer = ask(client, customer)
    assert answer.codigoRespuesta == 0
    listed = [(f.idFactura, f.importeAPagar, f.origen) for f in answer.facturas.factura]
    assert listed == [("SOON", Decimal("104.99"), "BASE"), ("LATER", Decimal("300.00"), "BASE")]


def test_asking_for_one_invoice(client, billing_base):
    customer, day = unique("C"), today()
    billing_base(base_invoice(customer, "A", (day, "1.00")))
    billing_base(base_invoice(customer, "B", (day, "2.00")))
    only_b = ask(client, customer, "B")
    assert only_b.codigoRespuesta == 0
    assert [f.idFactura for f in only_b.facturas.factura] == ["B"]
    missing = ask(client, customer, "Z")
    assert (missing.codigoRespuesta, missing.descripcion) == (3, "Factura inexistente")


def test_invoices_of_another_biller_are_not_shown(client, billing_base):
    customer, day = unique("C"), today()
    billing_base(base_invoice(customer, "A", (day, "1.00"), biller="5678"))
    assert ask(client, customer).codigoRespuesta == 1
    assert ask(client, customer, biller="5678").codigoRespuesta == 0


def test_every_query_is_stored_with_its_own_id(client, db):
    customer = unique("C")
    first, second = ask(client, customer), ask(client, customer)
    assert first.idConsulta != second.idConsulta
    stored = db.rows("SELECT query_id, response_code FROM debt_queries WHERE customer_id = :c"
                     " ORDER BY pk", c=customer)
    assert stored == [(first.idConsulta, 1), (second.idConsulta, 1)]
