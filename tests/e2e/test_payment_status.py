"""ConsultarPago ("did you get operation X?") and Eco, over real HTTP, with a zeep client
built only from /soap?wsdl; every message checked against the XSD by the client."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from adapter.domain.model import Currency, DueDate, Invoice, Origin
from support.data import today, unique


def status(client, operation, biller="1234"):
    return client.service.ConsultarPago(idEmpresa=biller, idOperacion=operation)


def pay(client, customer, amount, operation, invoice_id="F-1"):
    return client.service.InformarPago(
        idEmpresa="1234", idOperacion=operation, idCliente=customer, idFactura=invoice_id,
        importe=amount, moneda="ARS", fechaPago=f"{today().isoformat()}T00:00:00-03:00")


def test_an_unknown_operation_is_code_8_and_nothing_is_created(client, db):
    before = db.counts()
    answer = status(client, unique("OP"))
    assert (answer.codigoRespuesta, answer.descripcion) == (8, "Pago inexistente")
    assert answer.estado is None and answer.idRecibo is None and answer.importe is None
    assert db.counts() == before


def test_an_applied_notice_is_reported_as_stored(client, billing_base):
    customer = unique("C")
    billing_base(Invoice("1234", customer, "F-1", Currency.ARS,
                         (DueDate(today() + timedelta(5), Decimal("100.00")),),
                         Origin.BILLING_BASE))
    operation = unique("OP")
    notice = pay(client, customer, "100.00", operation)
    assert notice.codigoRespuesta == 0
    answer = status(client, operation)
    assert (answer.codigoRespuesta, answer.estado, answer.codigoRespuestaAviso) == \
        (0, "APLICADO", 0)
    assert answer.idRecibo == notice.idRecibo
    assert (answer.importe, answer.moneda) == (Decimal("100.00"), "ARS")
    paid_at = datetime.fromisoformat(f"{today().isoformat()}T00:00:00-03:00")
    assert answer.fechaPago == paid_at and answer.fechaPago.utcoffset() is not None


def test_an_observed_notice_says_the_code_it_was_answered(client):
    operation = unique("OP")
    notice = pay(client, unique("NOBODY"), "12.34", operation)
    assert notice.codigoRespuesta == 3
    answer = status(client, operation)
    assert (answer.codigoRespuesta, answer.estado, answer.codigoRespuestaAviso) == \
        (0, "OBSERVADO", 3)
    assert answer.idRecibo == notice.idRecibo and answer.importe == Decimal("12.34")


def test_another_billers_operation_is_unknown_here(client):
    operation = unique("OP")
    assert pay(client, unique("NOBODY"), "1.00", operation).codigoRespuesta == 3
    assert status(client, operation, biller="5678").codigoRespuesta == 8


def test_eco_echoes_the_message_with_the_servers_time(client):
    before = datetime.now(timezone.utc)
    answer = client.service.Eco(mensaje="hola, ¿estás?")
    after = datetime.now(timezone.utc)
    assert answer.mensaje == "hola, ¿estás?"
    assert answer.fechaHora.utcoffset() is not None
    assert before - timedelta(seconds=1) <= answer.fechaHora <= after + timedelta(seconds=1)
    empty = client.service.Eco()
    assert empty.mensaje is None and empty.fechaHora is not None
