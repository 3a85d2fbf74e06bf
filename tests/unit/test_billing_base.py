"""The billing base the biller sends: the day a file counts for and its name (Buenos
Aires time, the cut-off, Argentina's business days), what goes in it (only what changed
since the last file sent), and the biller's own invoice list as CSV."""
from datetime import date, datetime, time, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from adapter.domain.billing_base import file_day, file_name, fingerprint, key_of, novelties
from adapter.domain.calendar import BUSINESS_TZ, next_business_day
from adapter.domain.model import Currency, DueDate, Invoice, Origin
from adapter.files.fac import fac_records
from adapter.files.invoice_csv import InvalidInvoiceCsv, read_invoice_csv

ROOT = Path(__file__).resolve().parents[2]


def at(text: str) -> datetime:
    """A Buenos Aires wall-clock time."""
    return datetime.fromisoformat(text).replace(tzinfo=BUSINESS_TZ)


@pytest.mark.parametrize("moment, day", [
    (at("2026-12-04T14:29:59"), date(2026, 12, 4)),   # a Friday, before the cut-off
    (at("2026-12-04T14:30:00"), date(2026, 12, 9)),   # at it: Monday 7 and Tuesday 8
                                                      # are holidays (bridge, Dec 8)
    (at("2026-12-05T09:00:00"), date(2026, 12, 9)),   # a Saturday
    (at("2026-12-09T08:00:00"), date(2026, 12, 9)),   # a Wednesday morning
    (at("2026-12-10T23:59:00"), date(2026, 12, 11)),  # a Thursday night
    # 02:00 UTC on the 10th is 23:00 of the 9th in Buenos Aires: after the cut-off
    (datetime(2026, 12, 10, 2, 0, tzinfo=timezone.utc), date(2026, 12, 10)),
    (datetime(2026, 12, 9, 17, 0, tzinfo=timezone.utc), date(2026, 12, 9)),  # 14:00 there
])
def test_the_day_a_file_counts_for(moment, day):
    assert file_day(moment) == day


def test_the_cut_off_is_a_setting():
    assert file_day(at("2026-12-09T15:00:00"), cutoff=time(16, 0)) == date(2026, 12, 9)
    assert file_day(at("2026-12-09T15:00:00")) == date(2026, 12, 10)
    assert next_business_day(date(2026, 12, 24)) == date(2026, 12, 28)  # Christmas, weekend


def test_a_file_is_named_by_biller_day_and_attempt():
    assert file_name("1234", date(2026, 12, 9), 1) == "FAC1234.091226.1"
    assert file_name("1234", date(2026, 12, 9), 10) == "FAC1234.091226.10"
    with pytest.raises(ValueError):
        file_name("1234", date(2026, 12, 9), 0)


def invoice(customer="C1", invoice_id="F1", amount="100.00", on=date(2026, 12, 20),
            paid=False) -> Invoice:
    return Invoice("1234", customer, invoice_id, Currency.ARS,
                   (DueDate(on, Decimal(amount)),), Origin.CREATED_ONLINE, paid=paid)


def printed(inv: Invoice) -> tuple[Invoice, str]:
    """The invoice with the fingerprint of the record a FAC file holds for it."""
    record = list(fac_records("1234", date(2026, 12, 9), [inv]))[1]
    return inv, fingerprint(record)


def test_a_file_carries_only_what_changed_since_the_last_one_sent():
    day = date(2026, 12, 9)
    sent_one, unchanged, changed = invoice("A"), invoice("B"), invoice("C")
    sent = {key_of(inv): printed(inv)[1] for inv in (sent_one, unchanged, changed)}
    candidates = [printed(unchanged),
                  printed(invoice("C", amount="120.00")),       # its amount changed
                  printed(invoice("D")),                         # new
                  printed(invoice("E", paid=True)),              # paid: not sent
                  printed(invoice("F", on=date(2026, 12, 8))),  # expired on the day
                  printed(invoice("G", on=day))]                 # due that very day
    chosen = novelties(candidates, sent, day)
    assert [(n.invoice.customer_id, n.new) for n in chosen] == [("C", False), ("D", True),
                                                                ("G", True)]
    assert chosen[0].invoice.due_dates[0].amount == Decimal("120.00")


def test_a_change_in_a_message_is_a_change_and_an_invoice_named_twice_an_error():
    day = date(2026, 12, 9)
    base = invoice("A")
    sent = {key_of(base): printed(base)[1]}
    from dataclasses import replace
    assert len(novelties([printed(replace(base, ticket_message="Nuevo"))], sent, day)) == 1
    with pytest.raises(ValueError, match="named twice"):
        novelties([printed(base), printed(invoice("A", amount="1.00"))], {}, day)


# -- the biller's invoice list (CSV) ------------------------------------------------------

def test_the_demo_invoice_list_reads_as_invoices():
    invoices = list(read_invoice_csv(ROOT / "scripts" / "demo-erp-invoices.csv", "1234"))
    first = invoices[0]
    assert (first.customer_id, first.invoice_id, first.currency) == (
        "30123456", "A-0001-00009876", Currency.ARS)
    assert first.due_dates == (DueDate(date(2030, 12, 10), Decimal("15230.50")),
                               DueDate(date(2030, 12, 20), Decimal("15900.00")))
    assert all(inv.origin is Origin.BILLING_BASE and inv.biller_id == "1234"
               for inv in invoices)


HEADER = "cliente,factura,moneda,vencimiento1,importe1,vencimiento2,importe2,vencimiento3,importe3\n"


@pytest.mark.parametrize("line, reason", [
    ("C2,F2,EUR,2030-01-01,1.00,,,,", "line 3: moneda 'EUR'"),
    ("C2,F2,ARS,2030-13-01,1.00,,,,", "line 3: vencimiento1 '2030-13-01' is not"),
    ("C2,F2,ARS,2030-01-01,1.005,,,,", "line 3: importe1 '1.005' is not an amount"),
    ("C2,F2,ARS,2030-01-01,-1,,,,", "line 3: importe1 '-1'"),
    ("C2,F2,ARS,2030-01-01,1.00,2029-01-01,2.00,,", "line 3: due dates must be"),
    ("C2,F2,ARS,2030-01-01,1.00,2031-01-01,,,", "line 3: vencimiento2 and importe2"),
    ("C2,F2,ARS,2030-01-01,1.00,,,2031-01-01,1.00", "line 3: due dates are given in order"),
    ("C2,F2,ARS,2030-01-01", "line 3: 9 fields expected"),
    (",F2,ARS,2030-01-01,1.00,,,,", "line 3: cliente is empty"),
    ("C" * 20 + ",F2,ARS,2030-01-01,1.00,,,,", "line 3: cliente 'CCCCCCCCCCCCCCCCCCCC' is longer"),
    ("C2\x1b,F2,ARS,2030-01-01,1.00,,,,", "line 3: cliente holds the control character U+001B"),
    ("C2,F\u0100,ARS,2030-01-01,1.00,,,,", "line 3: factura 'FĀ' has characters"),
    ("C2,F2,ARS,2030-01-01,1000000000.00,,,,", "line 3: importe1 1000000000.00 is more"),
])
def test_a_list_with_a_bad_line_is_refused_naming_the_line(tmp_path, line, reason):
    path = tmp_path / "invoices.csv"
    path.write_text(HEADER + "C1,F1,ARS,2030-01-01,10.00,,,,\n" + line + "\n"
                    + "C3,F3,ARS,2030-01-01,10.00,,,,\n", encoding="utf-8")
    reading = read_invoice_csv(path, "1234")
    assert next(reading).customer_id == "C1"  # one line at a time: the bad one raises
    with pytest.raises(InvalidInvoiceCsv) as refused:
        list(reading)
    assert str(refused.value).startswith(reason), str(refused.value)


def test_an_unknown_column_is_refused_by_name_and_a_bom_is_read(tmp_path):
    path = tmp_path / "invoices.csv"
    path.write_text(HEADER.replace("importe3", "importe3,descuento"), encoding="utf-8")
    with pytest.raises(InvalidInvoiceCsv, match="unknown column.*'descuento'"):
        list(read_invoice_csv(path, "1234"))
    path.write_bytes(b"\xef\xbb\xbf" + HEADER.encode() + b"C1,F1,USD,2030-01-01,10.00,,,,\n")
    (only,) = read_invoice_csv(path, "1234")
    assert only.currency is Currency.USD
