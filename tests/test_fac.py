"""The billing base file (FAC): read record by record, refused whole when it cannot be
trusted, and loaded with `pmc-adapter import-fac` so that PMC finds the invoices."""
import os
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adapter.domain.model import Currency, DueDate, Invoice, Origin
from adapter.fac import RECORD_LENGTH, InvalidFacFile, format_fac, parse_fac
from conftest import today, unique

CLI = str(Path(sys.executable).with_name("pmc-adapter"))
DAY = date(2026, 11, 26)


def invoice(customer="C1", invoice_id="F1", *due, currency=Currency.ARS, ticket="", screen=""):
    due = due or ((date(2030, 1, 10), "1500.50"),)
    return Invoice("1234", customer, invoice_id, currency,
                   tuple(DueDate(on, Decimal(amount)) for on, amount in due),
                   Origin.BILLING_BASE, ticket_message=ticket, screen_message=screen)


def test_a_file_reads_back_as_the_invoices_it_was_made_of():
    invoices = [invoice("30123456", "A-0001-00009876", (date(2030, 1, 10), "15230.50"),
                        (date(2030, 1, 20), "15900"), (date(2030, 1, 31), "16500.99"),
                        ticket="Gracias por su pago", screen="Cuota 12"),
                invoice("20987654", "B-2", currency=Currency.USD)]
    text = format_fac("1234", DAY, invoices, barcode="1" * 60)
    assert all(len(line) == RECORD_LENGTH for line in text.splitlines())
    parsed = parse_fac(text)
    assert (parsed.biller_id, parsed.day, parsed.rejected) == ("1234", DAY, ())
    assert list(parsed.invoices) == invoices


def replace_in_record(text: str, line: int, start: int, value: str) -> str:
    lines = text.split("\n")
    record = lines[line - 1]
    lines[line - 1] = record[:start] + value + record[start + len(value):]
    return "\n".join(lines)


def test_unreadable_records_are_rejected_alone_with_line_and_reason():
    text = format_fac("1234", DAY, [invoice("C1"), invoice("C2"), invoice("C3"),
                                    invoice("C4")])
    text = replace_in_record(text, 2, 40, "7")  # currency
    text = replace_in_record(text, 3, 41, "20301340")  # no month 13
    text = replace_in_record(text, 4, 60, "20290101" + "00000000100")  # 2nd before 1st
    parsed = parse_fac(text.replace("\n", "\r\n"))
    assert [i.customer_id for i in parsed.invoices] == ["C4"]
    assert [(r.line, r.reason.split(" ")[0]) for r in parsed.rejected] == [
        (2, "currency"), (3, "date"), (4, "due")]


def test_a_control_character_in_a_field_rejects_its_record():
    text = format_fac("1234", DAY, [invoice("C1"), invoice("C2"), invoice("C3", ticket="Hola")])
    text = replace_in_record(text, 2, 2, "\x1b")  # in the client ID
    text = replace_in_record(text, 4, 100, "\x00")  # in the ticket message
    parsed = parse_fac(text)
    assert [i.customer_id for i in parsed.invoices] == ["C2"]
    assert [(r.line, r.reason) for r in parsed.rejected] == [
        (2, "the client ID holds the control character U+001B"),
        (4, "the ticket message holds the control character U+0000")]


@pytest.mark.parametrize("damage, words", [
    (lambda t: t.replace("0400", "0399", 1), "header"),
    (lambda t: "\n".join(t.split("\n")[:-2]) + "\n", "trailer"),
    (lambda t: replace_in_record(t, 4, 16, "0000009"), "counts"),
    (lambda t: replace_in_record(t, 4, 23, "0000000000000001"), "total"),
    (lambda t: replace_in_record(t, 4, 4, "9999"), "differs"),
    (lambda t: t.replace("0" * 10 + "\n", "\n", 1), "characters"),
    (lambda t: "", "at least"),
])
def test_a_file_that_cannot_be_trusted_is_refused_whole(damage, words):
    text = format_fac("1234", DAY, [invoice("C1"), invoice("C2")])
    with pytest.raises(InvalidFacFile, match=words):
        parse_fac(damage(text))


def import_fac(server, path):
    return subprocess.run([CLI, "import-fac", str(path)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PMC_ADAPTER_EMPRESAS": "1234",
                                            "PMC_ADAPTER_DATABASE_URL": server.database.url})


def test_imported_invoices_are_found_by_pmc_and_a_reimport_changes_nothing(
        server, client, tmp_path):
    first, second = unique("B"), unique("B")
    soon = today() + timedelta(5)
    path = tmp_path / "FAC1234.261126"
    path.write_text(format_fac("1234", today(), [
        invoice(first, "F-1", (soon, "100.00"), (soon + timedelta(10), "110.00")),
        invoice(second, "F-2", (soon, "50.00"))]), encoding="latin-1")

    result = import_fac(server, path)
    assert result.returncode == 0, result.stderr
    assert "2 created, 0 replaced, 0 unchanged, 0 paid, 0 rejected" in result.stdout
    debt = client.service.ConsultarDeuda(idEmpresa="1234", idCliente=first)
    (factura,) = debt.facturas.factura
    assert (factura.origen, factura.importeAPagar) == ("BASE", Decimal("100.00"))

    paid = client.service.InformarPago(
        idEmpresa="1234", idOperacion=unique("OP"), idCliente=second, idFactura="F-2",
        importe="50.00", moneda="ARS", fechaPago=f"{today()}T00:00:00-03:00")
    assert paid.codigoRespuesta == 0
    again = import_fac(server, path)
    assert "0 created, 0 replaced, 1 unchanged, 1 paid, 0 rejected" in again.stdout
    assert client.service.ConsultarDeuda(idEmpresa="1234", idCliente=second).codigoRespuesta == 2


def test_rejected_records_are_listed_and_the_rest_imported(server, tmp_path):
    good, bad = unique("B"), unique("B")
    text = format_fac("1234", today(), [invoice(good, "F-1"), invoice(bad, "F-1")])
    path = tmp_path / "FAC1234.261126"
    path.write_text(replace_in_record(text, 3, 40, "9"), encoding="latin-1")
    result = import_fac(server, path)
    assert result.returncode == 1
    assert "rejected line 3: currency '9'" in result.stdout
    assert server.database.count("invoices", customer_id=good) == 1
    assert server.database.count("invoices", customer_id=bad) == 0


def test_a_refused_file_imports_nothing(server, tmp_path):
    customer = unique("B")
    text = format_fac("1234", today(), [invoice(customer, "F-1")])
    path = tmp_path / "FAC1234.261126"
    path.write_text(replace_in_record(text, 3, 16, "0000002"), encoding="latin-1")
    result = import_fac(server, path)
    assert result.returncode == 2 and "nothing imported" in result.stderr
    assert server.database.count("invoices", customer_id=customer) == 0
