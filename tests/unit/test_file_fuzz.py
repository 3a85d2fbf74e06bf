"""The network's files as an attacker or a broken transfer makes them: whatever the bytes,
the FAC and COB readers answer with their file's refusal or with records read or
rejected one by one, never with another exception; ``import-fac`` ends with exit 2,
not a traceback. One digit rule for both: ASCII ``0``-``9`` (latin-1 has ``¹²³``, which
``str.isdigit`` takes and ``int`` refuses)."""
import os
import subprocess
import sys
import tempfile
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapter.files.cob import InvalidCobFile, RejectedLine, check_cob, read_cob
from adapter.domain.model import Currency, DueDate, Invoice, Origin
from adapter.files.fac import InvalidFacFile, format_fac, parse_fac
from adapter.files.fixed_width import cents, day
from adapter.text import ascii_digits
from support.cobgen import cob_text
from support.databases import migrated

CLI = str(Path(sys.executable).with_name("pmc-adapter"))
DAY = date(2026, 11, 26)
FAC = format_fac("1234", DAY, [
    Invoice("1234", f"C{n}", f"F{n}", Currency.ARS,
            (DueDate(date(2030, 1, 10), Decimal("1500.50")),), Origin.BILLING_BASE)
    for n in range(3)])
COB = cob_text("1234", DAY, [
    dict(customer=f"C{n}", invoice=f"F{n}", amount="10.50", channel="HB", control=f"{n:04d}")
    for n in range(3)]).encode("latin-1")

# what a latin-1 file can hold, weighted towards what looks like a field's content
CHARACTERS = st.one_of(st.sampled_from("0123456789 \r\n9405¹²³"),
                       st.characters(min_codepoint=0, max_codepoint=255))


@pytest.mark.parametrize("text", ["7", "¹", "²³", "٣", "１２", " 1", "1 ", "", "+1", "-1"])
def test_only_ascii_digits_are_digits(text):
    assert ascii_digits(text) is (text == "7")


@pytest.mark.parametrize("text", ["2026¹126", "２０２６１１２６", "2026 1 1", "20261131", "2026112"])
def test_a_date_is_eight_ascii_digits_of_a_real_day(text):
    assert day(text) is None
    assert day("20261126") == DAY


def test_an_amount_is_ascii_digits_with_two_implied_decimals():
    assert cents("00000001050") == Decimal("10.50") and str(cents("5")) == "0.05"
    assert cents("0000000105¹") is None and cents("") is None


# what a digit may be mistaken for, and the rest of latin-1
LOOKALIKES = st.one_of(st.sampled_from("¹²³\xa0 -+."), CHARACTERS)


def field_edits():
    """Characters overwritten in place, one at a time: each record keeps its length, so
    that the reader gets past the length checks to the fields. (sampled_from draws
    uniformly; integers() favours small numbers and the bounds.)"""
    return st.lists(st.tuples(st.just("field"), st.sampled_from(range(5)),
                              st.sampled_from(range(280)), LOOKALIKES), min_size=1, max_size=3)


def edits():
    """Characters replaced by others anywhere: lengths and line endings change too."""
    return st.lists(st.tuples(st.just("anywhere"), st.integers(0, 3000), st.integers(0, 3),
                              st.text(CHARACTERS, max_size=4)), min_size=1, max_size=4)


def damaged(text: str, changes) -> str:
    for kind, where, how, replacement in changes:
        if kind == "field":
            lines = text.split("\n")
            number = where % len(lines)
            line = lines[number]
            at = how % max(1, len(line))
            lines[number] = (line[:at] + replacement + line[at + len(replacement):])[:len(line)]
            text = "\n".join(lines)
        else:
            at = where % max(1, len(text))
            text = text[:at] + replacement + text[at + how:]
    return text


# 1,500: about 8 of them put a ¹ into the trailer's count or total, which ended in a
# ValueError when a digit was str.isdigit (measured against that reader)
@settings(max_examples=1500, deadline=None)
@given(field_edits())
def test_no_fac_file_with_a_field_damaged_ends_in_another_exception(changes):
    read_fac(changes)


@settings(max_examples=200, deadline=None)
@given(edits())
def test_no_damaged_fac_file_ends_in_another_exception(changes):
    read_fac(changes)


def read_fac(changes) -> None:
    try:
        parsed = parse_fac(damaged(FAC, changes))
    except InvalidFacFile:
        return
    assert all(invoice.biller_id == parsed.biller_id for invoice in parsed.invoices)


@settings(max_examples=100, deadline=None)
@given(st.text(CHARACTERS, max_size=600))
def test_no_fac_file_of_any_characters_ends_in_another_exception(text):
    try:
        parse_fac(text)
    except InvalidFacFile:
        pass


def read_whole(data: bytes) -> list:
    """check_cob, then read_cob, as the importer runs them, on a file of ``data``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "COB1234.271126"
        path.write_bytes(data)
        try:
            check_cob(path)
        except InvalidCobFile:
            try:  # the second pass refuses it too, at the latest when it gets there
                list(read_cob(path))
            except InvalidCobFile:
                return []
            raise AssertionError("read_cob read a file check_cob refused")
        return list(read_cob(path))


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field_edits())
# found by hypothesis once: the header's and the trailer's biller both made 0234, which the
# file name (COB1234...) contradicts; read_cob did not look at the name
@example(changes=[("field", 0, 206, "0"), ("field", 4, 206, "0")])
def test_no_cob_file_with_a_field_damaged_ends_in_another_exception(changes):
    read_cob_damaged(changes)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits())
def test_no_damaged_cob_file_ends_in_another_exception(changes):
    read_cob_damaged(changes)


def read_cob_damaged(changes) -> None:
    data = damaged(COB.decode("latin-1"), changes).encode("latin-1")
    for outcome in read_whole(data):
        if not isinstance(outcome, RejectedLine):
            assert outcome.amount == outcome.amount.quantize(Decimal("0.01"))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_no_cob_file_of_any_bytes_ends_in_another_exception(data):
    read_whole(data)


def test_import_fac_refuses_a_unicode_digit_with_exit_2(tmp_path):
    """A trailer count of ``000000¹`` ended in a ValueError traceback."""
    lines = FAC.split("\n")
    lines[-2] = lines[-2][:16] + "000000¹" + lines[-2][23:]
    path = tmp_path / "FAC1234.261126"
    path.write_text("\n".join(lines), encoding="latin-1")
    result = subprocess.run([CLI, "import-fac", str(path)], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path, env={
                                **os.environ, "PMC_ADAPTER_EMPRESAS": "1234",
                                "PMC_ADAPTER_DATABASE_URL":
                                migrated(f"sqlite:///{tmp_path / 'db'}")})
    assert result.returncode == 2, result.stderr
    assert "refused, nothing imported: line 5: the trailer counts '000000¹' records" in result.stderr
    assert "Traceback" not in result.stderr
