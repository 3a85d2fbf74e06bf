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
from adapter.files.fac import (RECORD_LENGTH, FacReader, InvalidFacFile, file_lines, format_fac,
                         parse_fac)
from support.data import today, unique
from support.databases import migrated

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
    parsed = parse_fac(text.replace("\r\n", "\n"))  # LF line ends are read too
    assert [i.customer_id for i in parsed.invoices] == ["C4"]
    assert [(r.line, r.reason.split(" ")[0]) for r in parsed.rejected] == [
        (2, "currency"), (3, "date"), (4, "due")]


def test_a_control_character_in_a_field_rejects_its_record():
    text = format_fac("1234", DAY, [invoice("C1"), invoice("C2"), invoice("C3", ticket="Hola")])
    text = replace_in_record(text, 2, 2, "\x1b")  # in the client ID
    text = replace_in_record(text, 4, 140, "\x00")  # in the ticket message
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
    (lambda t: t.replace("0" * 10 + "\r\n", "\r\n", 1), "characters"),
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


# -- the layout, as the network reads it ------------------------------------------------

DATA = Path(__file__).parent.parent / "data"


def test_a_file_typed_from_the_networks_layout_reads_as_its_invoices():
    """tests/data/FAC1234.071226.1 was typed field by field from the layout's table
    (docs/billing-base.rst), not written by format_fac: 1-based positions, CRLF."""
    raw = (DATA / "FAC1234.071226.1").read_bytes()
    assert raw.count(b"\r\n") == 4 and all(len(line) == RECORD_LENGTH
                                           for line in raw.split(b"\r\n")[:-1])
    parsed = parse_fac(raw.decode("latin-1"))
    assert (parsed.biller_id, parsed.day, parsed.rejected) == ("1234", date(2026, 12, 7), ())
    assert list(parsed.invoices) == [
        invoice("30123456", "A-0001-00009876", (date(2026, 12, 15), "15230.50"),
                (date(2026, 12, 22), "15900.00"), (date(2026, 12, 31), "16500.99"),
                ticket="Gracias por su pago", screen="Cuota 12"),
        invoice("20987654", "B-2", (date(2027, 1, 10), "120.00"), currency=Currency.USD)]
    # and our writer writes that file back, byte for byte (its barcode is the first's)
    assert format_fac("1234", date(2026, 12, 7), parsed.invoices[:1], barcode="0123456789" * 6
                      ).split("\r\n")[1] == raw.decode("latin-1").split("\r\n")[1]


def test_a_file_in_the_old_layout_is_refused_naming_the_trailers_layout(tmp_path):
    """The same invoices laid out as an earlier reading had it (ticket message at 99, no
    filler before the trailer's total): refused whole, saying which layout it is in."""
    result = subprocess.run(
        [CLI, "import-fac", str(DATA / "FAC1234.071226.old-layout")], capture_output=True,
        text=True, timeout=120, cwd=tmp_path, env={
            **os.environ, "PMC_ADAPTER_EMPRESAS": "1234",
            "PMC_ADAPTER_DATABASE_URL": migrated(f"sqlite:///{tmp_path / 'db'}")})
    assert result.returncode == 2, result.stderr
    assert "refused, nothing imported: line 4: the trailer is in the old layout (the total " \
           "at positions 24-39, no filler); the network's trailer has 7 zeros at 24-30 and " \
           "the total at 31-46" in result.stderr, result.stderr


def test_a_ticket_message_where_the_layout_has_zeros_rejects_the_record():
    text = format_fac("1234", DAY, [invoice("C1"), invoice("C2")])
    text = replace_in_record(text, 3, 98, "Hola")
    parsed = parse_fac(text)
    assert [i.customer_id for i in parsed.invoices] == ["C1"]
    assert parsed.rejected[0].line == 3 and "positions 99-117" in parsed.rejected[0].reason


def test_what_does_not_fit_its_field_is_not_written():
    with pytest.raises(ValueError, match="client ID"):
        format_fac("1234", DAY, [invoice("C" * 20)])
    with pytest.raises(ValueError, match="11 digits"):
        format_fac("1234", DAY, [invoice("C1", "F1", (date(2030, 1, 1), "1000000000.00"))])


from hypothesis import given, settings, strategies as st  # noqa: E402

# what a field may hold: latin-1 printable, not blank, no trailing spaces (a fixed-width
# field is padded with them)
_TEXT = st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                      blacklist_categories=("Cc",))


def _field(min_size: int, max_size: int):
    return st.text(_TEXT, min_size=min_size, max_size=max_size).map(
        lambda text: text.rstrip(" ")).filter(lambda text: len(text) >= min_size and
                                              (not min_size or text.strip()))


@st.composite
def _invoices(draw):
    days = sorted(draw(st.sets(st.dates(date(2000, 1, 1), date(2099, 12, 31)),
                               min_size=1, max_size=3)))
    amounts = [Decimal(draw(st.integers(0, 99_999_999_999))) / 100 for _ in days]
    return Invoice("1234", draw(_field(1, 19)), draw(_field(1, 20)),
                   draw(st.sampled_from(list(Currency))),
                   tuple(DueDate(on, amount) for on, amount in zip(days, amounts)),
                   Origin.BILLING_BASE, ticket_message=draw(_field(0, 40)),
                   screen_message=draw(_field(0, 15)))


@settings(max_examples=150, deadline=None)
@given(st.lists(_invoices(), max_size=8), st.dates(date(2000, 1, 1), date(2099, 12, 31)),
       st.sampled_from(["", "0" * 60, "1234567890" * 6, "ABC"]))
def test_any_invoices_written_read_back_the_same(invoices, day, barcode):
    raw = format_fac("1234", day, invoices, barcode).encode("latin-1")
    lines = raw.split(b"\r\n")
    assert lines[-1] == b"" and all(len(line) == RECORD_LENGTH for line in lines[:-1])
    parsed = parse_fac(raw.decode("latin-1"))
    assert (parsed.biller_id, parsed.day, parsed.rejected) == ("1234", day, ())
    assert list(parsed.invoices) == invoices


def test_a_line_longer_than_a_record_is_refused_without_being_read_whole(tmp_path):
    path = tmp_path / "FAC1234.071226.1"
    path.write_bytes((DATA / "FAC1234.071226.1").read_bytes()[:RECORD_LENGTH + 2]
                     + b"5" * 10_000_000)
    with pytest.raises(InvalidFacFile, match="line 2: records are 280 characters"):
        FacReader(file_lines(path)).invoices().__next__()


def test_a_file_streamed_holds_only_its_rejections():
    """Invoices come one at a time and the trailer is checked after the last: a consumer
    storing them in one transaction rolls back on that late refusal."""
    text = format_fac("1234", DAY, [invoice("C1"), invoice("C2")])
    text = replace_in_record(text, 4, 30, "0000000000000001")  # the trailer's total
    reader = FacReader(text.splitlines(keepends=True))
    stream = reader.invoices()
    assert [next(stream).customer_id, next(stream).customer_id] == ["C1", "C2"]
    with pytest.raises(InvalidFacFile, match="total"):
        next(stream)


@pytest.mark.parametrize("batch", [1, 2, 500])
def test_an_import_in_batches_decides_each_invoice_in_file_order(engine, batch):
    """Looked up and written a batch at a time: created, replaced, unchanged and paid as
    one at a time would say, an invoice named twice ending as its last record says."""
    from adapter.service.billing import BillingService
    from adapter.storage.unit_of_work import Storage

    storage = Storage(engine)
    billing = BillingService(storage)
    a, b, c, d = (unique("B") for _ in range(4))
    soon = date.today() + timedelta(30)
    first = [invoice(a, "F1", (soon, "10.00")), invoice(b, "F1", (soon, "20.00")),
             invoice(c, "F1", (soon, "30.00"))]
    assert billing.import_billing_base(lambda: first, batch=batch) == {
        "created": 3, "replaced": 0, "unchanged": 0, "paid": 0}
    with storage.unit_of_work() as uow:
        uow.invoices.mark_paid("1234", c, "F1")
        uow.commit()
    second = [invoice(a, "F1", (soon, "10.00")),            # unchanged
              invoice(b, "F1", (soon, "25.00")),            # replaced
              invoice(c, "F1", (soon, "99.00")),            # paid: kept
              invoice(d, "F1", (soon, "1.00")),             # created...
              invoice(d, "F1", (soon, "2.00"))]             # ...and replaced by its twin
    assert billing.import_billing_base(lambda: second, batch=batch) == {
        "created": 1, "replaced": 2, "unchanged": 1, "paid": 1}
    with storage.unit_of_work(read_only=True) as uow:
        stored = uow.invoices.of_keys([("1234", x, "F1") for x in (a, b, c, d)])
    assert [stored[("1234", x, "F1")].due_dates[0].amount for x in (a, b, c, d)] == [
        Decimal("10.00"), Decimal("25.00"), Decimal("30.00"), Decimal("2.00")]
    assert stored[("1234", c, "F1")].paid and not stored[("1234", d, "F1")].paid
