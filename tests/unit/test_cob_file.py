"""The payment report file (COB): read in two streaming passes, refused whole when it cannot
be trusted as a whole, its unreadable lines rejected alone with their line and field."""
import tracemalloc
from datetime import date
from decimal import Decimal
from unittest.mock import ANY

import pytest

from adapter.files import cob
from adapter.files.cob import (CobLine, CobName, InvalidCobFile, RejectedLine, check_cob,
                         parse_cob_name, read_cob)
from support.cobgen import cob_text, put, write_cob, write_many

DAY = date(2026, 11, 26)
NAME = "COB1234.271126"
TWO = [dict(customer="30123456", invoice="A-0001-00009876", amount="15230.50",
            paid_on=date(2026, 11, 25), due_on=date(2026, 12, 10),
            credited_on=date(2026, 11, 27), flag=" ", movement="2", channel="HB",
            control="0042"),
       dict(customer="20987654", invoice="B-2", amount="0.99", channel="S1", control="0043")]


def write(tmp_path, text: str, name: str = NAME):
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1"))
    return path


def test_a_file_reads_back_as_the_payments_it_was_made_of(tmp_path):
    path = write_cob(tmp_path / NAME, "1234", DAY, TWO)
    assert check_cob(path) == cob.CobSummary("1234", DAY, 2, Decimal("15231.49"), (), ANY)
    assert list(read_cob(path)) == [
        CobLine(2, "30123456", "A-0001-00009876", date(2026, 12, 10), " ", date(2026, 11, 25),
                Decimal("15230.50"), "2", date(2026, 11, 27), "HB", "0042"),
        CobLine(3, "20987654", "B-2", date(2026, 12, 6), "0", DAY, Decimal("0.99"), "2",
                date(2026, 11, 28), "S1", "0043")]


def test_a_day_without_payments_is_a_header_and_a_trailer(tmp_path):
    path = write_cob(tmp_path / NAME, "1234", DAY, [])
    assert check_cob(path) == cob.CobSummary("1234", DAY, 0, Decimal("0.00"), (), ANY)
    assert list(read_cob(path)) == []


@pytest.mark.parametrize("ending", ["\r\n", "\n"])
@pytest.mark.parametrize("last_line_ended", [True, False])
def test_lines_may_end_in_crlf_or_lf_and_the_last_may_have_no_ending(tmp_path, ending,
                                                                     last_line_ended):
    text = cob_text("1234", DAY, TWO).replace("\r\n", ending)
    if not last_line_ended:
        text = text[:-len(ending)]
    path = write(tmp_path, text)
    assert check_cob(path).records == 2
    assert [line.invoice_id for line in read_cob(path)] == ["A-0001-00009876", "B-2"]


def test_a_carriage_return_alone_does_not_end_a_line(tmp_path):
    text = cob_text("1234", DAY, TWO).replace("\r\n", "\r")
    with pytest.raises(InvalidCobFile, match="line 1: records are 100 characters, not 404"):
        check_cob(write(tmp_path, text))


def test_amounts_are_exact_decimals_with_two_places(tmp_path):
    text = put(cob_text("1234", DAY, [{}, {}]), 2, 58, "00000012345")
    text = put(text, 3, 58, "00000000000")
    text = put(text, 4, 31, "00000012345")
    amounts = [line.amount for line in read_cob(write(tmp_path, text))]
    assert amounts == [Decimal("123.45"), Decimal("0")]
    assert [str(amount) for amount in amounts] == ["123.45", "0.00"]
    assert check_cob(write(tmp_path, text)).total == Decimal("123.45")


def test_ids_lose_their_trailing_spaces_only(tmp_path):
    path = write_cob(tmp_path / NAME, "1234", DAY, [dict(customer=" A 1", invoice="F 2  x")])
    [line] = read_cob(path)
    assert (line.customer_id, line.invoice_id) == (" A 1", "F 2  x")


def test_ids_are_read_as_latin_1(tmp_path):
    path = write_cob(tmp_path / NAME, "1234", DAY, [dict(customer="NUÑEZ", invoice="Nº 7")])
    [line] = read_cob(path)
    assert (line.customer_id, line.invoice_id) == ("NUÑEZ", "Nº 7")


def test_the_inferred_fields_are_kept_raw_whatever_they_hold(tmp_path):
    path = write_cob(tmp_path / NAME, "1234", DAY,
                     [dict(flag="X", movement="7", channel="ZZ", control="A1B2")])
    [line] = read_cob(path)
    assert (line.flag, line.movement, line.channel, line.control) == ("X", "7", "ZZ", "A1B2")


def test_a_line_is_identified_by_channel_control_invoice_and_payment_day(tmp_path):
    lines = [dict(invoice="F1", channel="PC", control="0001", paid_on=date(2026, 11, 24)),
             dict(invoice="F1", channel="PC", control="0001", paid_on=date(2026, 11, 25),
                  customer="C2", amount="1.00")]
    first, second = read_cob(write_cob(tmp_path / NAME, "1234", DAY, lines))
    assert first.identity == ("PC", "0001", "F1", date(2026, 11, 24))
    assert second.identity == ("PC", "0001", "F1", date(2026, 11, 25))


# -- the file name ----------------------------------------------------------------------

def test_a_name_gives_the_biller_and_the_day_the_funds_arrive():
    assert parse_cob_name("COB1234.271126") == CobName("1234", date(2026, 11, 27))
    assert parse_cob_name("COB0007.010100") == CobName("0007", date(2000, 1, 1))
    # as the network's server may list it
    assert parse_cob_name("cob1234.271126") == CobName("1234", date(2026, 11, 27))


@pytest.mark.parametrize("name", [
    "COB123.271126", "COB12345.271126", "COBABCD.271126", "COB1234.311126", "COB1234.271326",
    "COB1234.27112", "COB1234.271126.01", "Cob1234.271126", "FAC1234.271126",
    "COB1234271126", "dir/COB1234.271126", "COB1234.271126 ", "COB1234.２71126"])
def test_a_name_that_is_not_cob_nnnn_ddmmaa_is_refused(name):
    with pytest.raises(InvalidCobFile, match="file name"):
        parse_cob_name(name)


def test_a_file_named_for_another_biller_is_refused(tmp_path):
    text = cob_text("1234", DAY, TWO)
    with pytest.raises(InvalidCobFile, match="file name's biller 9999 differs from the "
                                             "header's 1234"):
        check_cob(write(tmp_path, text, "COB9999.271126"))
    with pytest.raises(InvalidCobFile, match="file name's biller 9999"):
        check_cob(write(tmp_path, text, "download.tmp"), name="COB9999.271126")
    with pytest.raises(InvalidCobFile, match="file name 'report.txt'"):
        check_cob(write(tmp_path, text, "download.tmp"), name="report.txt")


def test_the_name_s_day_is_not_the_header_s_and_a_renamed_file_is_still_read(tmp_path):
    text = cob_text("1234", DAY, TWO)
    assert check_cob(write(tmp_path, text, "COB1234.011226")).day == DAY
    assert check_cob(write(tmp_path, text, "report.txt")).records == 2
    assert check_cob(write(tmp_path, text, "COB9999.271126"), name=NAME).records == 2


# -- whole-file refusals ------------------------------------------------------------------

def without_line(text: str, line: int) -> str:
    lines = text.split("\r\n")
    return "\r\n".join(lines[:line - 1] + lines[line:])


def with_line(text: str, line: int, record: str) -> str:
    lines = text.split("\r\n")
    return "\r\n".join(lines[:line - 1] + [record] + lines[line - 1:])


HEADER = "0400123420261126".ljust(100)


@pytest.mark.parametrize("damage, reason", [
    (lambda t: "", "the file is empty"),
    (lambda t: put(t, 1, 1, "5"), r"line 1: the first record is not a header \(type '5'"),
    (lambda t: put(t, 1, 2, "401"), "line 1: the header's code is '401', not '400'"),
    (lambda t: put(t, 1, 5, "12A4"), "line 1: the header's biller '12A4' is not 4 digits"),
    (lambda t: put(t, 1, 9, "20261131"), "line 1: the header's date '20261131' is not"),
    (lambda t: put(t, 1, 9, "2026 1 1"), "line 1: the header's date '2026 1 1' is not"),
    (lambda t: put(t, 3, 100, "  "), "line 3: records are 100 characters, not 101"),
    (lambda t: t.replace(HEADER, HEADER[:99], 1), "line 1: records are 100 characters, not 99"),
    (lambda t: with_line(t, 3, ""), "line 3: records are 100 characters, not 0"),
    (lambda t: put(t, 3, 1, "7"), r"line 3: record type '7' is not 0 \(header\), 5"),
    (lambda t: with_line(t, 3, HEADER), "line 3: a second header"),
    (lambda t: t + HEADER + "\r\n", r"line 5: a record after the trailer \(line 4\)"),
    (lambda t: t + "\r\n" + " " * 100, r"line 6: a record after the trailer \(line 4\)"),
    (lambda t: without_line(t, 4), "no trailer: the file ends at line 3"),
    (lambda t: put(t, 4, 2, "500"), "line 4: the trailer's code is '500', not '400'"),
    (lambda t: put(t, 4, 5, "1235"), "line 4: the trailer's biller '1235' differs from the "
                                     "header's '1234'"),
    (lambda t: put(t, 4, 17, "0000003"), "line 4: the trailer counts '0000003' detail "
                                         "records; the file has 2"),
    (lambda t: put(t, 4, 17, "00000 2"), "line 4: the trailer counts '00000 2'"),
    (lambda t: put(t, 4, 31, "00001523150"), r"line 4: the trailer's total '00001523150' is "
                                             r"not the sum of the detail amounts, 15231\.49"),
    (lambda t: put(t, 4, 31, "0000152314 "), "line 4: the trailer's total '0000152314 '"),
    (lambda t: put(t, 3, 58, "0000000099-"), "line 3: amount '0000000099-' is not 11 digits, "
                                             "so the trailer's total cannot be checked"),
    (lambda t: put(t, 3, 58, "0000000009²"), "line 3: amount '0000000009²' is not 11 digits"),
])
def test_a_file_that_cannot_be_trusted_is_refused_whole(tmp_path, damage, reason):
    path = write(tmp_path, damage(cob_text("1234", DAY, TWO)))
    with pytest.raises(InvalidCobFile, match=f"^{reason}") as refused:
        check_cob(path)
    assert refused.value.fault_code == "Client.InvalidCobFile"
    with pytest.raises(InvalidCobFile, match=f"^{reason}"):
        list(read_cob(path))


def test_empty_lines_after_the_trailer_are_ignored(tmp_path):
    path = write(tmp_path, cob_text("1234", DAY, TWO) + "\r\n\n\r\n")
    assert check_cob(path).records == 2
    assert len(list(read_cob(path))) == 2


def test_read_cob_yields_lines_before_it_meets_a_bad_trailer(tmp_path):
    path = write(tmp_path, put(cob_text("1234", DAY, TWO), 4, 17, "0000009"))
    lines = read_cob(path)
    assert next(lines).line == 2 and next(lines).line == 3
    with pytest.raises(InvalidCobFile, match="counts '0000009'"):
        next(lines)


def test_a_line_without_ending_is_refused_without_being_held(tmp_path):
    path = write(tmp_path, cob_text("1234", DAY, TWO)[:-2] + "x" * 10_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidCobFile, match="line 4: records are 100 characters, "
                                                 "not 10000100"):
            check_cob(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


# -- line rejections ----------------------------------------------------------------------

@pytest.mark.parametrize("at, value, field, reason", [
    (2, " " * 19, "customer ID", "the customer ID is blank"),
    (21, " " * 20, "invoice ID", "the invoice ID is blank"),
    (41, "20261340", "due date", "due date '20261340' is not a YYYYMMDD date"),
    (41, "00000000", "due date", "due date '00000000' is not a YYYYMMDD date"),
    (50, "2026112 ", "payment date", "payment date '2026112 ' is not a YYYYMMDD date"),
    (70, "20260229", "credit date", "credit date '20260229' is not a YYYYMMDD date"),
    (78, "  ", "channel", "channel '  ' is not two non-blank characters"),
    (78, "P ", "channel", "channel 'P ' is not two non-blank characters"),
    (80, "    ", "control number", "the control number is blank"),
])
def test_an_unreadable_line_is_rejected_alone_and_its_money_still_counts(
        tmp_path, at, value, field, reason):
    lines = [dict(customer=f"C{n}", invoice=f"F{n}", amount=f"{n}.00") for n in (1, 2, 3)]
    path = write(tmp_path, put(cob_text("1234", DAY, lines), 3, at, value))
    summary = check_cob(path)
    assert (summary.records, summary.total) == (3, Decimal("6.00"))
    assert summary.rejected == (RejectedLine(3, field, reason),)
    outcomes = list(read_cob(path))
    assert [type(outcome) for outcome in outcomes] == [CobLine, RejectedLine, CobLine]
    assert outcomes[1] == RejectedLine(3, field, reason)
    assert [outcome.invoice_id for outcome in outcomes[::2]] == ["F1", "F3"]


def test_a_line_is_rejected_on_its_first_unreadable_field(tmp_path):
    text = put(put(cob_text("1234", DAY, [{}]), 2, 50, "99999999"), 2, 78, "  ")
    assert [r.field for r in check_cob(write(tmp_path, text)).rejected] == ["payment date"]


def test_too_many_rejected_lines_refuse_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(cob, "MAX_REJECTED", 2)
    text = cob_text("1234", DAY, [dict(control=" ")] * 2 + [{}])
    assert len(check_cob(write(tmp_path, text)).rejected) == 2
    text = cob_text("1234", DAY, [dict(control=" ")] * 3)
    with pytest.raises(InvalidCobFile, match="line 4: more than 2 detail records rejected"):
        check_cob(write(tmp_path, text))


# -- memory -------------------------------------------------------------------------------

def test_a_large_file_is_read_in_flat_memory(tmp_path):
    path = write_many(tmp_path / NAME, "1234", DAY, 60_000)
    size = path.stat().st_size
    assert size > 6_000_000
    tracemalloc.start()
    try:
        summary = check_cob(path)
        count = sum(1 for _ in read_cob(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (summary.records, count, summary.rejected) == (60_000, 60_000, ())
    assert peak < size / 15  # under 400 KB, where holding the lines would take over 6 MB
