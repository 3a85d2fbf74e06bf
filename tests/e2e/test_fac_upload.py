"""Sending the billing base: `pmc-adapter upload-fac` builds FACnnnn.DDMMAA.N from the
invoices created online and the biller's invoice list, uploads it to a real FTPS server
(pyftpdlib on loopback, implicit and explicit TLS: the one tests/test_cob_fetch.py
runs), and brings the rejection files back; on SQLite and PostgreSQL.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adapter.files import fac
from adapter.files.ftps import Account
from adapter.config import ConfigurationError, load_settings
from adapter.domain.calendar import BUSINESS_TZ
from adapter.domain.model import Currency, DueDate, Invoice, Origin
from adapter.files.fac import FacReader, detail_record, file_lines, rejected_records
from adapter.service.billing import BillingService
from adapter.service.uploading import LEASE, BillingBaseUploads, UploadError
from adapter.storage.db import make_engine, upgrade_schema
from adapter.storage.unit_of_work import Storage
from support.servers import Database
from support.ftps import (PASSWORD, USER, FtpsServer, adapter_environment,  # noqa: F401
                          pki, serving)  # (pki: a fixture)

BILLER = "1234"
# Wednesday 9 December 2026, a business day (the 7th and 8th are holidays), before the
# cut-off; the invoices fall due years later
AT = datetime(2026, 12, 9, 10, 0, tzinfo=BUSINESS_TZ)
DAY = "091226"
CSV_HEADER = "cliente,factura,moneda,vencimiento1,importe1,vencimiento2,importe2," \
             "vencimiento3,importe3\n"


@pytest.fixture(params=["implicit", "explicit"])
def ftps(request, pki, tmp_path):  # noqa: F811
    with serving(FtpsServer(tmp_path / "ftp", request.param, ca_file=pki["ca"]),
                 pki["server"]) as running:
        yield running


@pytest.fixture
def storage(own_database):
    engine = make_engine(own_database)
    upgrade_schema(engine)
    yield Storage(engine)
    engine.dispose()


def invoice_csv(path: Path, rows: list[str]) -> Path:
    path.write_text(CSV_HEADER + "".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def online(storage: Storage, customer: str, number: str, amount: str) -> Invoice:
    """An invoice created online (AltaFactura), through the use case."""
    invoice = Invoice(BILLER, customer, number, Currency.ARS,
                      (DueDate(date(2031, 3, 1), Decimal(amount)),), Origin.CREATED_ONLINE,
                      ticket_message="Cuota marzo")
    BillingService(storage).create_invoice(invoice)
    return invoice


def uploaded(server: FtpsServer) -> list[str]:
    return sorted(path.name for path in (server.root / "Upload").iterdir())


def carried(path: Path) -> dict[tuple[str, str], Decimal]:
    """(client, invoice) -> first amount of each invoice of a FAC file, read by the
    product's reader (header, layout and trailer checked)."""
    reader = FacReader(file_lines(path))
    found = {(inv.customer_id, inv.invoice_id): inv.due_dates[0].amount
             for inv in reader.invoices()}
    assert not reader.rejected
    return found


def run(command: list[str], environment: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("pmc-adapter")), *command],
                          capture_output=True, text=True, env=environment, timeout=120)


def environment_for(server: FtpsServer, database_url: str, **more) -> dict:
    return adapter_environment(server, database_url, BILLER, **more)


# -- the day's file, as an operator (or the systemd timer) runs it --------------------------

def test_upload_fac_sends_what_changed_once_and_brings_rejected_invoices_back(
        ftps, storage, own_database, tmp_path):
    online(storage, "55501", "W-1", "1500.00")
    listing = invoice_csv(tmp_path / "invoices.csv", [
        "30123456,A-0001-00009876,ARS,2030-12-10,15230.50,2030-12-20,15900.00,,",
        "30123457,A-0001-00009877,USD,2030-12-15,41.00,,,,"])
    environment = environment_for(ftps, own_database)
    command = ["upload-fac", "--empresa", BILLER, "--invoices", str(listing),
               "--at", AT.isoformat()]

    first = run(command, environment)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == (
        f"biller {BILLER}: sent FAC{BILLER}.{DAY}.1 for 2026-12-09 (3 invoice(s): 3 new, "
        "0 changed; total 16771.50)")
    assert uploaded(ftps) == [f"FAC{BILLER}.{DAY}.1"]  # no temporary name left behind
    sent = ftps.root / "Upload" / f"FAC{BILLER}.{DAY}.1"
    assert carried(sent) == {("55501", "W-1"): Decimal("1500.00"),
                             ("30123456", "A-0001-00009876"): Decimal("15230.50"),
                             ("30123457", "A-0001-00009877"): Decimal("41.00")}
    raw = sent.read_bytes()
    assert raw.count(b"\r\n") == 5 and all(len(line) == 280 for line in raw.split(b"\r\n")[:-1])
    assert raw[:16] == f"0400{BILLER}20261209".encode()

    again = run(command, environment)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1].startswith(f"biller {BILLER}: nothing to send")
    assert uploaded(ftps) == [f"FAC{BILLER}.{DAY}.1"]

    # the network rejects one invoice (its record alone: no reason), and the whole of
    # nothing else: that invoice goes again, as it is, in .2
    record = next(line for line in raw.decode("latin-1").split("\r\n")
                  if line[1:20].rstrip() == "30123457")
    ftps.publish(f"RECHAZADO_FAC{BILLER}.{DAY}.1", (record + "\r\n").encode("latin-1"))
    third = run(command, environment)
    assert third.returncode == 0, third.stderr
    assert f"RECHAZADO_FAC{BILLER}.{DAY}.1: FAC{BILLER}.{DAY}.1 rejected in part: 1 " \
           "invoice(s)" in third.stdout
    assert uploaded(ftps) == [f"FAC{BILLER}.{DAY}.1", f"FAC{BILLER}.{DAY}.2"]
    assert carried(ftps.root / "Upload" / f"FAC{BILLER}.{DAY}.2") == {
        ("30123457", "A-0001-00009877"): Decimal("41.00")}

    # rejected with a reason: it waits for a correction (exit 1), then goes in .3
    ftps.publish(f"rechazado_fac{BILLER}.{DAY}.2",  # listed in lower case: found all the same
                 (record + "E12 IMPORTE INVALIDO\r\n").encode("latin-1"))
    fourth = run(command, environment)
    assert fourth.returncode == 1, fourth.stderr
    assert "invoice A-0001-00009877 of client 30123457 rejected (E12 IMPORTE INVALIDO): " \
           "sent again once corrected" in fourth.stdout
    assert fourth.stdout.splitlines()[-1].startswith(f"biller {BILLER}: nothing to send")
    invoice_csv(listing, ["30123456,A-0001-00009876,ARS,2030-12-10,15230.50,2030-12-20,"
                          "15900.00,,",
                          "30123457,A-0001-00009877,USD,2030-12-15,42.00,,,,"])
    fifth = run(command, environment)
    assert fifth.returncode == 0, fifth.stderr + fifth.stdout
    assert fifth.stdout.splitlines()[-1] == (
        f"biller {BILLER}: sent FAC{BILLER}.{DAY}.3 for 2026-12-09 (1 invoice(s): 0 new, "
        "1 changed; total 42.00)")

    status = run(["fac-status", "--json"], environment)
    assert status.returncode == 0, status.stderr
    files = json.loads(status.stdout)[BILLER]["files"]
    assert [(f["name"], f["state"], f["records"], f["rejection"]) for f in files] == [
        (f"FAC{BILLER}.{DAY}.3", "sent", 1, None),
        (f"FAC{BILLER}.{DAY}.2", "sent", 1, f"RECHAZADO_FAC{BILLER}.{DAY}.2"),
        (f"FAC{BILLER}.{DAY}.1", "sent", 3, f"RECHAZADO_FAC{BILLER}.{DAY}.1")]
    assert json.loads(status.stdout)[BILLER]["pending_rejections"] == []
    database = Database(own_database)
    try:  # each rejection file stored as it came
        with database.engine.connect() as connection:
            stored = connection.exec_driver_sql(
                "SELECT name, content FROM fac_rejections ORDER BY pk").all()
        assert [row[0] for row in stored] == [f"RECHAZADO_FAC{BILLER}.{DAY}.1",
                                              f"RECHAZADO_FAC{BILLER}.{DAY}.2"]
        assert bytes(stored[1][1]).endswith(b"E12 IMPORTE INVALIDO\r\n")
    finally:
        database.engine.dispose()


def test_a_bad_line_in_the_invoice_list_sends_nothing_and_names_the_line(
        ftps, storage, own_database, tmp_path):
    online(storage, "55501", "W-1", "1500.00")
    listing = invoice_csv(tmp_path / "invoices.csv", [
        "30123456,A-1,ARS,2030-12-10,15230.50,,,,",
        "30123457,A-2,ARS,2030-12-15,41.0O,,,,"])  # a letter O in the amount
    environment = environment_for(ftps, own_database)
    refused = run(["upload-fac", "--invoices", str(listing), "--at", AT.isoformat()],
                  environment)
    assert refused.returncode == 2
    assert "line 3" in refused.stderr and refused.stdout.splitlines()[-1] == \
        f"biller {BILLER}: nothing sent"
    assert uploaded(ftps) == []
    invoice_csv(listing, ["30123456,A-1,ARS,2030-12-10,15230.50,,,,"])
    fixed = run(["upload-fac", "--invoices", str(listing), "--at", AT.isoformat()], environment)
    assert fixed.returncode == 0, fixed.stderr
    assert uploaded(ftps) == [f"FAC{BILLER}.{DAY}.1"]  # the refused run took no name


def test_output_builds_the_file_and_sends_nothing(ftps, storage, own_database, tmp_path):
    online(storage, "55501", "W-1", "1500.00")
    out = tmp_path / "out"
    out.mkdir()
    environment = environment_for(ftps, own_database)
    built = run(["upload-fac", "--output", str(out), "--at", AT.isoformat()], environment)
    assert built.returncode == 0, built.stderr
    assert built.stdout.splitlines()[-1].endswith("nothing uploaded")
    assert [path.name for path in out.iterdir()] == [f"FAC{BILLER}.{DAY}.1"]
    assert carried(out / f"FAC{BILLER}.{DAY}.1") == {("55501", "W-1"): Decimal("1500.00")}
    assert uploaded(ftps) == []
    sent = run(["upload-fac", "--at", AT.isoformat()], environment)  # built is not sent
    assert sent.returncode == 0 and uploaded(ftps) == [f"FAC{BILLER}.{DAY}.1"]


# -- the rules, on the service ---------------------------------------------------------------

def uploads(storage: Storage, clock=None, **options) -> BillingBaseUploads:
    return BillingBaseUploads(storage, **({"clock": clock} if clock else {}), **options)


def test_after_the_cutoff_the_file_counts_for_the_next_business_day(ftps, storage):
    online(storage, "55501", "W-1", "1500.00")
    friday_late = datetime(2026, 12, 11, 14, 30, tzinfo=BUSINESS_TZ)
    done = uploads(storage).upload(BILLER, Account(ftps.options()), at=friday_late)
    assert (done.state, done.name) == ("sent", f"FAC{BILLER}.141226.1")  # Monday the 14th


def test_past_the_days_files_nothing_is_sent(ftps, storage):
    account = Account(ftps.options())
    service = uploads(storage, max_files_per_day=1)
    online(storage, "55501", "W-1", "1500.00")
    assert service.upload(BILLER, account, at=AT).state == "sent"
    online(storage, "55501", "W-2", "10.00")
    done = service.upload(BILLER, account, at=AT)
    assert (done.state, done.files) == ("limit", 1)
    assert uploaded(ftps) == [f"FAC{BILLER}.{DAY}.1"]


def test_paid_and_expired_invoices_are_not_sent(ftps, storage, tmp_path):
    paid = online(storage, "55501", "W-1", "1500.00")
    with storage.unit_of_work() as uow:
        uow.invoices.mark_paid(BILLER, paid.customer_id, paid.invoice_id)
        uow.commit()
    listing = invoice_csv(tmp_path / "i.csv", [
        "55501,W-1,ARS,2030-12-10,1500.00,,,,",  # paid here: not sent whatever the list says
        "30123456,A-1,ARS,2026-12-01,10.00,,,,",  # due before the file's day
        "30123456,A-2,ARS,2030-12-01,20.00,,,,"])
    from adapter.files.invoice_csv import read_invoice_csv
    done = uploads(storage).upload(BILLER, Account(ftps.options()),
                                   lambda: read_invoice_csv(listing, BILLER), at=AT)
    assert (done.state, done.records) == ("sent", 1)
    assert carried(ftps.root / "Upload" / done.name) == {("30123456", "A-2"): Decimal("20.00")}


def test_the_list_wins_over_the_invoice_created_online(ftps, storage, tmp_path):
    online(storage, "55501", "W-1", "1500.00")
    listing = invoice_csv(tmp_path / "i.csv", ["55501,W-1,ARS,2031-03-01,1600.00,,,,"])
    from adapter.files.invoice_csv import read_invoice_csv
    done = uploads(storage).upload(BILLER, Account(ftps.options()),
                                   lambda: read_invoice_csv(listing, BILLER), at=AT)
    assert carried(ftps.root / "Upload" / done.name) == {("55501", "W-1"): Decimal("1600.00")}


def test_an_invoice_named_twice_in_the_list_sends_nothing(ftps, storage, tmp_path):
    rows = [f"3{n:07d},A-{n},ARS,2030-12-10,1.00,,,," for n in range(600)]
    listing = invoice_csv(tmp_path / "i.csv", rows + ["30000007,A-7,ARS,2030-12-10,2.00,,,,"])
    from adapter.files.invoice_csv import read_invoice_csv
    with pytest.raises(UploadError, match="invoice A-7 of client 30000007 is named twice"):
        uploads(storage).upload(BILLER, Account(ftps.options()),
                                lambda: read_invoice_csv(listing, BILLER), at=AT)
    assert uploaded(ftps) == []


def test_two_runs_at_once_send_one_file(ftps, storage):
    online(storage, "55501", "W-1", "1500.00")
    entered, release = threading.Event(), threading.Event()

    class Slow(Account):
        def upload(self, path, name, progress):
            entered.set()
            assert release.wait(30)
            super().upload(path, name, progress)

    results = {}
    first = threading.Thread(target=lambda: results.setdefault(
        "first", uploads(storage).upload(BILLER, Slow(ftps.options()), at=AT)))
    first.start()
    assert entered.wait(30)
    results["second"] = uploads(storage).upload(BILLER, Account(ftps.options()), at=AT)
    release.set()
    first.join(30)
    assert results["second"].state == "busy" and results["second"].name.endswith(".1")
    assert results["first"].state == "sent"
    assert uploaded(ftps) == [f"FAC{BILLER}.{DAY}.1"]
    assert uploads(storage).upload(BILLER, Account(ftps.options()), at=AT).state == "nothing"


def test_a_failed_upload_leaves_its_invoices_to_the_next_run(ftps, storage):
    online(storage, "55501", "W-1", "1500.00")
    with pytest.raises(UploadError, match="logging in"):
        uploads(storage).upload(BILLER, Account(ftps.options(password="wrong")), at=AT)
    done = uploads(storage).upload(BILLER, Account(ftps.options()), at=AT)
    # the failed attempt keeps its name: a name on the server is never used twice
    assert (done.state, done.name, done.records) == ("sent", f"FAC{BILLER}.{DAY}.2", 1)
    files, _ = uploads(storage).status(BILLER)
    assert [(f.name, f.state) for f in files] == [(f"FAC{BILLER}.{DAY}.2", "sent"),
                                                  (f"FAC{BILLER}.{DAY}.1", "failed")]
    assert "logging in" in files[1].error


def test_a_run_killed_mid_way_is_taken_as_failed_once_its_lease_expires(ftps, storage):
    online(storage, "55501", "W-1", "1500.00")
    now = datetime.now(BUSINESS_TZ)
    with storage.unit_of_work() as uow:  # what a run killed after claiming leaves
        uow.fac_files.claim(BILLER, AT.date(), lambda n: f"FAC{BILLER}.{DAY}.{n}", 10, now,
                            now + LEASE)
        uow.commit()
    account = Account(ftps.options())
    assert uploads(storage, clock=lambda: now + LEASE / 2).upload(
        BILLER, account, at=AT).state == "busy"
    done = uploads(storage, clock=lambda: now + LEASE * 2).upload(BILLER, account, at=AT)
    assert (done.state, done.name) == ("sent", f"FAC{BILLER}.{DAY}.2")


def test_a_rejection_naming_no_invoice_of_the_file_rejects_it_whole(ftps, storage):
    account = Account(ftps.options())
    service = uploads(storage)
    online(storage, "55501", "W-1", "1500.00")
    online(storage, "55502", "W-2", "10.00")
    assert service.upload(BILLER, account, at=AT).records == 2
    ftps.publish(f"RECHAZADO_FAC{BILLER}.{DAY}.1", b"ARCHIVO RECHAZADO: TOTAL ERRONEO\r\n")
    found = service.bring_back_rejections(BILLER, account, at=AT)
    assert [(r.name, r.whole, r.marked) for r in found] == [
        (f"RECHAZADO_FAC{BILLER}.{DAY}.1", True, 2)]
    assert service.bring_back_rejections(BILLER, account, at=AT) == []  # stored once
    assert service.upload(BILLER, account, at=AT).records == 2  # both again, as they are
    assert service.pending_rejections(BILLER) == []


# -- the reading of a rejection file, the settings, the counter --------------------------------

def test_rejection_lines_that_are_detail_records_name_their_invoices():
    invoice = Invoice(BILLER, "30123456", "A-0001", Currency.ARS,
                      (DueDate(date(2030, 1, 1), Decimal("1.00")),), Origin.CREATED_ONLINE)
    record = detail_record(invoice)
    content = (f"0400{BILLER}20261209".ljust(280, "0") + "\r\n" + record + "\r\n"
               + record + " 07 VENCIMIENTO ANTERIOR A LA FECHA \r\n" + "TOTAL: 2\r\n"
               + " " + record[:40] + "\r\n").encode("latin-1")
    assert [(r.customer_id, r.invoice_id, r.reason) for r in rejected_records(content)] == [
        ("30123456", "A-0001", None), ("30123456", "A-0001", "07 VENCIMIENTO ANTERIOR A LA FECHA")]
    assert len(record) == fac.RECORD_LENGTH


def test_the_billing_base_settings_are_checked_by_name():
    settings = load_settings(environ={"PMC_ADAPTER_FAC_CUTOFF": "13:45",
                                      "PMC_ADAPTER_FAC_MAX_FILES_PER_DAY": "3",
                                      "PMC_ADAPTER_FAC_FTP_FOLDER": "Subida"})
    assert (settings.fac_cutoff.hour, settings.fac_cutoff.minute) == (13, 45)
    assert settings.fac_max_files_per_day == 3 and settings.cob_ftp.upload_folder == "Subida"
    assert load_settings(environ={}).cob_ftp.upload_folder == "Upload"
    for variable, value in (("FAC_CUTOFF", "1430"), ("FAC_CUTOFF", "24:00"),
                            ("FAC_MAX_FILES_PER_DAY", "0"), ("FAC_MAX_FILES_PER_DAY", "100")):
        with pytest.raises(ConfigurationError, match=variable.lower()):
            load_settings(environ={f"PMC_ADAPTER_{variable}": value})
    with pytest.raises(ConfigurationError, match="did you mean PMC_ADAPTER_FAC_CUTOFF"):
        load_settings(environ={"PMC_ADAPTER_FAC_CUTOF": "13:00"})


def test_the_counter_counts_records_sent_and_rejected(ftps, storage):
    from adapter import metrics
    from adapter.app import fac_counts

    account = Account(ftps.options())
    service = uploads(storage)
    online(storage, "55501", "W-1", "1500.00")
    online(storage, "55502", "W-2", "10.00")
    service.upload(BILLER, account, at=AT)
    ftps.publish(f"RECHAZADO_FAC{BILLER}.{DAY}.1", b"RECHAZADO\r\n")
    service.bring_back_rejections(BILLER, account, at=AT)
    text = metrics.exposition(lambda: [], lambda: fac_counts(storage)).decode()
    assert f'pmc_fac_records_total{{biller="{BILLER}",outcome="sent"}} 2.0' in text
    assert f'pmc_fac_records_total{{biller="{BILLER}",outcome="rejected"}} 2.0' in text


def test_a_file_sent_is_no_older_than_its_lease_renewals(ftps, storage):
    """The lease is renewed while a run works: a claim older than LEASE whose run is alive
    is not taken as failed."""
    online(storage, "55501", "W-1", "1500.00")
    times = iter([datetime.now(BUSINESS_TZ) + step * timedelta(seconds=45) for step in range(60)])
    done = uploads(storage, clock=lambda: next(times)).upload(BILLER, Account(ftps.options()),
                                                              at=AT)
    assert done.state == "sent"


def test_check_config_logs_in_and_opens_both_folders(ftps, own_database):
    environment = environment_for(ftps, own_database)
    good = run(["check-config"], environment)
    assert f"ok   FTPS account (global): 127.0.0.1:{ftps.port}: logged in as {USER!r}; " \
           "'Download' and 'Upload' open" in good.stdout, good.stdout + good.stderr
    assert PASSWORD not in good.stdout + good.stderr
    missing = run(["check-config"], {**environment, "PMC_ADAPTER_FAC_FTP_FOLDER": "Subida"})
    assert missing.returncode == 1
    assert "FAIL FTPS account (global): FTPS 127.0.0.1" in missing.stdout
    assert "opening the folder 'Subida' failed" in missing.stdout


def test_the_lookups_by_invoice_seek_an_index_on_sqlite(tmp_path):
    """A batch's lookups (stored invoices, what was last sent, what a file carried) seek
    by biller and client: a scan per batch made a million-invoice build quadratic."""
    from sqlalchemy import event

    engine = make_engine(f"sqlite:///{tmp_path / 'plan.sqlite3'}")
    upgrade_schema(engine)
    statements = []

    def seen(connection, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))
    event.listen(engine, "before_cursor_execute", seen)
    keys = [("C1", "F1"), ("C2", "F2")]
    with Storage(engine).unit_of_work(read_only=True) as uow:
        uow.invoices.of_keys([(BILLER, *key) for key in keys])
        uow.fac_files.last_sent(BILLER, keys)
        uow.fac_files.carried(1, keys)
    event.remove(engine, "before_cursor_execute", seen)
    assert len(statements) == 3
    with engine.connect() as connection:
        for statement, parameters in statements:
            plan = " | ".join(row[3] for row in connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters))
            assert "SCAN invoices" not in plan and "SCAN fac_records" not in plan, plan
            assert "customer_id=?" in plan or "file_pk=?" in plan, plan
    engine.dispose()


def test_fetch_cob_brings_the_rejections_back_too(ftps, storage, own_database, tmp_path):
    online(storage, "55501", "W-1", "1500.00")
    online(storage, "55502", "W-2", "10.00")
    environment = environment_for(ftps, own_database,
                                  PMC_ADAPTER_COB_DOWNLOAD_DIR=str(tmp_path / "cob"))
    now = datetime.now(BUSINESS_TZ)
    sent = run(["upload-fac", "--at", now.isoformat()], environment)
    assert sent.returncode == 0, sent.stderr
    name = uploaded(ftps)[0]
    record = next(line for line in (ftps.root / "Upload" / name).read_bytes()
                  .decode("latin-1").split("\r\n") if line[1:20].rstrip() == "55502")
    ftps.publish(f"RECHAZADO_{name}", (record + "  FECHA INVALIDA\r\n").encode("latin-1"))
    fetched = run(["fetch-cob"], environment)
    assert fetched.returncode == 0, fetched.stderr
    assert f"RECHAZADO_{name}: {name} rejected in part: 1 invoice(s)" in fetched.stdout
    status = run(["fac-status"], environment)
    assert f"waiting for a correction: invoice W-2 of client 55502 (FECHA INVALIDA), " \
           f"rejected in {name}" in status.stdout, status.stdout
    assert f"RECHAZADO_{name}: 1 rejected" in status.stdout
