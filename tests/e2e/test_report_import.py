"""``pmc-adapter import-cob``: the network's payment reports into the database, on SQLite
and PostgreSQL, through the installed command as an operator runs it.

A file failing a whole-file check is refused whole (exit 2, nothing written); a bad
line is rejected with its line number and field (exit 1) and the rest imported; the
same file again, or a corrected re-issue of it, creates no line twice.
"""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from adapter.storage.orm import ReportLineRow
from support.cobgen import cob_text, put, write_cob
from support.servers import Database

CLI = str(Path(sys.executable).with_name("pmc-adapter"))
DAY = date(2026, 11, 25)


def import_cob(database_url: str, *paths: Path, empresas: str = "1234,5678"):
    return subprocess.run(
        [CLI, "import-cob", *map(str, paths)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PMC_ADAPTER_DATABASE_URL": database_url,
             "PMC_ADAPTER_EMPRESAS": empresas})


def lines(database_url: str) -> list[tuple]:
    database = Database(database_url)
    rows = database.rows(
        select(ReportLineRow.channel, ReportLineRow.control,
               ReportLineRow.invoice_id, ReportLineRow.paid_on,
               ReportLineRow.customer_id, ReportLineRow.amount)
        .order_by(ReportLineRow.control))
    database.engine.dispose()
    return [tuple(row) for row in rows]


def counts(database_url: str) -> dict[str, int]:
    database = Database(database_url)
    try:
        return {table: database.count(table) for table in ("report_files", "report_lines")}
    finally:
        database.engine.dispose()


DAY_LINES = [dict(customer="C1", invoice="F1", amount="1500.00", control="0001"),
             dict(customer="C2", invoice="F2", amount="20.50", channel="HB", control="0002"),
             dict(customer="C3", invoice="F3", amount="0.01", channel="S1", control="0003")]


@pytest.fixture
def own_database(own_database):
    """Migrated, as ``pmc-adapter upgrade-schema`` leaves it: import-cob does not migrate."""
    from support.databases import migrated

    return migrated(own_database)


def test_import_cob_refuses_a_database_never_migrated_and_creates_none(tmp_path):
    path = write_cob(tmp_path / "COB1234.271126", "1234", DAY, DAY_LINES)
    database = tmp_path / "never.sqlite3"
    result = import_cob(f"sqlite:///{database}", path)
    assert result.returncode == 2
    assert f"no database file {database}: `pmc-adapter upgrade-schema` creates or migrates " \
        "it" in result.stderr, result.stderr
    assert not database.exists()


def test_a_report_is_imported_once_and_a_reissue_corrects_without_duplicating(
        own_database, tmp_path):
    path = write_cob(tmp_path / "COB1234.271126", "1234", DAY, DAY_LINES)
    first = import_cob(own_database, path)
    assert first.returncode == 0, first.stderr
    assert "3 records: 3 new, 0 corrected, 0 unchanged, 0 rejected" in first.stdout
    assert lines(own_database) == [
        ("PC", "0001", "F1", DAY, "C1", Decimal("1500.00")),
        ("HB", "0002", "F2", DAY, "C2", Decimal("20.50")),
        ("S1", "0003", "F3", DAY, "C3", Decimal("0.01"))]

    again = import_cob(own_database, path)
    assert again.returncode == 0 and "already imported (as COB1234.271126)" in again.stdout
    assert counts(own_database) == {"report_files": 1, "report_lines": 3}

    corrected = [dict(line) for line in DAY_LINES]
    corrected[1]["amount"] = "25.50"
    (tmp_path / "reissue").mkdir()
    reissue = write_cob(tmp_path / "reissue" / "COB1234.271126", "1234", DAY, corrected)
    result = import_cob(own_database, reissue)
    assert result.returncode == 0, result.stderr
    assert "3 records: 0 new, 1 corrected, 2 unchanged, 0 rejected" in result.stdout
    assert lines(own_database)[1][5] == Decimal("25.50")
    assert counts(own_database) == {"report_files": 2, "report_lines": 3}


def test_a_file_failing_a_whole_file_check_is_refused_and_nothing_is_written(
        own_database, tmp_path):
    text = cob_text("1234", DAY, DAY_LINES)
    wrong_total = tmp_path / "COB1234.271126"
    # the trailer's total (positions 31-41) one cent off
    wrong_total.write_bytes(put(text, 5, 31, "00000152052").encode("latin-1"))
    result = import_cob(own_database, wrong_total)
    assert result.returncode == 2
    assert "refused, nothing imported" in result.stderr and "total" in result.stderr
    assert counts(own_database) == {"report_files": 0, "report_lines": 0}


def test_a_file_of_a_biller_not_served_is_refused(own_database, tmp_path):
    path = write_cob(tmp_path / "COB9999.271126", "9999", DAY, DAY_LINES)
    result = import_cob(own_database, path)
    assert result.returncode == 2 and "biller 9999 is not served here" in result.stderr
    assert counts(own_database) == {"report_files": 0, "report_lines": 0}


def test_bad_lines_are_rejected_with_their_number_and_the_rest_imported(own_database, tmp_path):
    text = cob_text("1234", DAY, DAY_LINES + [dict(customer="C1", invoice="F1",
                                                   amount="1500.00", control="0001")])
    text = put(text, 3, 50, "20261340")  # line 3 (the 2nd detail): no such payment date
    path = tmp_path / "COB1234.271126"
    path.write_bytes(text.encode("latin-1"))
    result = import_cob(own_database, path)
    assert result.returncode == 1, result.stderr
    assert "rejected line 3: payment date" in result.stdout
    # line 5 repeats line 2's identity: the first one stands
    assert "rejected line 5: identity: same channel, control number, invoice ID and " \
           "payment date as line 2" in result.stdout
    assert "4 records: 2 new, 0 corrected, 0 unchanged, 2 rejected" in result.stdout
    assert [row[1] for row in lines(own_database)] == ["0001", "0003"]


def test_several_files_import_each_and_the_worst_exit_code_wins(own_database, tmp_path):
    good = write_cob(tmp_path / "COB1234.271126", "1234", DAY, DAY_LINES)
    other_day = write_cob(tmp_path / "COB5678.281126", "5678", date(2026, 11, 26),
                          DAY_LINES[:1])
    missing = tmp_path / "COB1234.291126"
    result = import_cob(own_database, good, missing, other_day)
    assert result.returncode == 2
    assert "No such file" in result.stderr
    assert counts(own_database) == {"report_files": 2, "report_lines": 4}


@pytest.mark.parametrize("size", [2_500])
def test_a_file_larger_than_a_batch_is_stored_whole(own_database, tmp_path, size):
    from support.cobgen import write_many
    path = write_many(tmp_path / "COB1234.271126", "1234", DAY, size)
    result = import_cob(own_database, path)
    assert result.returncode == 0, result.stderr
    assert f"{size} records: {size} new" in result.stdout
    assert counts(own_database)["report_lines"] == size


# -- a file is checked as it is imported ------------------------------------------------

def test_the_same_report_with_lf_line_endings_is_the_same_report(own_database, tmp_path):
    crlf = write_cob(tmp_path / "COB1234.271126", "1234", DAY, DAY_LINES)
    (tmp_path / "lf").mkdir()
    lf = tmp_path / "lf" / "COB1234.271126"
    lf.write_bytes(crlf.read_bytes().replace(b"\r\n", b"\n") + b"\n\n")  # and empty lines
    assert import_cob(own_database, crlf).returncode == 0
    again = import_cob(own_database, lf)
    assert again.returncode == 0 and "already imported (as COB1234.271126)" in again.stdout
    assert counts(own_database) == {"report_files": 1, "report_lines": 3}


def test_a_file_rewritten_between_its_check_and_its_import_imports_nothing(own_database,
                                                                           tmp_path):
    """The importer's passes read the file twice; another process rewrites it in between
    (here, the moment the biller is looked up, after the check): nothing is imported."""
    from adapter.files.cob import InvalidCobFile
    from adapter.service.reports import ReportImporter
    from adapter.storage.db import make_engine, upgrade_schema
    from adapter.storage.unit_of_work import Storage

    path = write_cob(tmp_path / "COB1234.271126", "1234", DAY, DAY_LINES)
    other = cob_text("1234", DAY, DAY_LINES[:2]).encode("latin-1")

    def serves(biller_id: str) -> bool:
        subprocess.run([sys.executable, "-c", "import sys; open(sys.argv[1], 'wb')"
                        ".write(sys.stdin.buffer.read())", str(path)], input=other, check=True)
        return True

    engine = make_engine(own_database)
    upgrade_schema(engine)
    try:
        with pytest.raises(InvalidCobFile, match="changed between its check and its import"):
            ReportImporter(Storage(engine), serves=serves).import_file(path)
    finally:
        engine.dispose()
    assert counts(own_database) == {"report_files": 0, "report_lines": 0}


@pytest.mark.parametrize("character", ["\x00", "\x1b", "\x85"], ids=["NUL", "ESC", "NEL"])
def test_a_control_character_in_a_field_rejects_its_line_with_its_number(
        own_database, tmp_path, character):
    text = put(cob_text("1234", DAY, DAY_LINES), 3, 4, character)  # line 3's customer ID
    path = tmp_path / "COB1234.271126"
    path.write_bytes(text.encode("latin-1"))
    result = import_cob(own_database, path)
    assert result.returncode == 1, result.stderr
    assert f"rejected line 3: customer ID: the customer ID holds the control character " \
           f"U+{ord(character):04X}" in result.stdout
    assert [row[1] for row in lines(own_database)] == ["0001", "0003"]
