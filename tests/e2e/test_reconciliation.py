"""Closing a day: `pmc-adapter import-cob` and `pmc-adapter reconcile` against a real
server's notices (with the bundled ERP), on SQLite and PostgreSQL; and the pairing rules
on their own.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import zeep

from adapter.domain.model import Currency, DueDate, Invoice, Origin
from adapter.domain.calendar import business_days_back, is_business_day, previous_business_day
from adapter.domain.reconciliation import NotifiedPayment, ReportedPayment, State, pair
from support.cobgen import write_cob
from support.data import today
from support.servers import erp_env, server_with_erp, wait_until

CLI = str(Path(sys.executable).with_name("pmc-adapter"))


# -- the pairing rules ---------------------------------------------------------------------

D = date(2026, 11, 25)


def line(key, customer="C1", invoice="F1", amount="10.00", day=D, channel="PC"):
    return ReportedPayment(key, customer, invoice, Decimal(amount), day, channel, f"{key:04d}")


def notice(operation, customer="C1", invoice="F1", amount="10.00", day=D,
           currency=Currency.ARS, reversed_=False):
    return NotifiedPayment(operation, customer, invoice, Decimal(amount), currency, day,
                           reversed=reversed_)


def states(items):
    return sorted((item.state, item.line.key if item.line else None,
                   item.notice.operation_id if item.notice else None) for item in items)


def test_every_line_and_notice_ends_in_exactly_one_state():
    items = pair([line(1), line(2, "C2", "F2", "5.00"), line(3, "C3", "F3")],
                 [notice("A"), notice("B", "C2", "F2", "6.00"), notice("C", "C4", "F4"),
                  notice("E", "C5", "F5", reversed_=True)], {D})
    assert states(items) == sorted([
        (State.MATCHED, 1, "A"), (State.DIFFERS, 2, "B"), (State.REPORTED_ONLY, 3, None),
        (State.NOTIFIED_ONLY, None, "C"), (State.REVERSED, None, "E")])
    differs = next(item for item in items if item.state is State.DIFFERS)
    assert differs.why == "amount: report 5.00 ARS, notice 6.00 ARS"


def test_the_best_pair_wins_whatever_the_order():
    # two payments of the same invoice on one day: each line takes the notice of its amount
    lines = [line(1, amount="10.00"), line(2, amount="12.00")]
    notices = [notice("B", amount="12.00"), notice("A", amount="10.00")]
    assert states(pair(lines, notices, {D})) == sorted(
        [(State.MATCHED, 1, "A"), (State.MATCHED, 2, "B")])
    # a notice of the same day is preferred to an exact one of the day before
    near_midnight = [notice("X", day=D - timedelta(days=1)), notice("Y", amount="11.00")]
    assert states(pair([line(1)], near_midnight, {D, D - timedelta(days=1)})) == sorted(
        [(State.DIFFERS, 1, "Y"), (State.NOTIFIED_ONLY, None, "X")])


def test_a_payment_across_midnight_pairs_with_its_line_and_says_so():
    (item,) = pair([line(1, day=D)], [notice("A", day=D - timedelta(days=1))], {D})
    assert item.state is State.DIFFERS and "payment day: report 2026-11-25, notice " \
        "2026-11-24" in item.why
    two_days = pair([line(1, day=D)], [notice("A", day=D - timedelta(days=2))], set())
    assert states(two_days) == sorted([(State.REPORTED_ONLY, 1, None),
                                       (State.AWAITING_REPORT, None, "A")])


def test_a_dollar_notice_never_matches_the_pesos_report_and_a_reversed_reported_one_differs():
    (item,) = pair([line(1)], [notice("A", currency=Currency.USD)], {D})
    assert item.state is State.DIFFERS and "10.00 USD" in item.why
    (item,) = pair([line(1)], [notice("A", reversed_=True)], {D})
    assert item.state is State.DIFFERS and "reversed" in item.why


def test_business_days_follow_argentinas_holidays():
    assert not is_business_day(date(2026, 11, 23))  # National Sovereignty Day (moved)
    assert not is_business_day(date(2026, 11, 22))  # a Sunday
    assert is_business_day(date(2026, 11, 24))
    assert previous_business_day(date(2026, 11, 24)) == date(2026, 11, 20)
    # 7 and 8 December 2026 are holidays, 5 and 6 a weekend
    assert business_days_back(date(2026, 12, 9), 3) == [
        date(2026, 12, 2), date(2026, 12, 3), date(2026, 12, 4)]


# -- a day's close, end to end -------------------------------------------------------------

@pytest.fixture
def closing(own_database, tmp_path):
    with server_with_erp(own_database, tmp_path,
                         [f"ZZ,ZZ-1,ARS,{today() + timedelta(30)},1.00,,,,"]) as parts:
        yield parts


def cli(database_url, *arguments, erp=None):
    """The command as the operator runs it: with the server's settings."""
    return subprocess.run([CLI, *arguments], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PMC_ADAPTER_DATABASE_URL": database_url,
                               "PMC_ADAPTER_EMPRESAS": "1234", **(erp_env(erp) if erp else {})})


def test_a_day_with_every_state_closes_and_closes_again_without_duplicates(closing, tmp_path):
    server, erp, storage = closing
    day = today()
    due = day + timedelta(10)
    for customer, amount, paid in [("C1", "100.00", False), ("C2", "50.00", False),
                                   ("C3", "30.00", False), ("C4", "40.00", False),
                                   ("C5", "45.00", False), ("C6", "60.00", False),
                                   ("C8", "80.00", True)]:
        with storage.unit_of_work() as uow:
            uow.invoices.save(Invoice("1234", customer, "F-" + customer[1:], Currency.ARS,
                                      (DueDate(due, Decimal(amount)),), Origin.BILLING_BASE,
                                      paid=paid))
            uow.commit()
    pmc = zeep.Client(server.soap_url + "?wsdl")
    paid_at = f"{day}T00:00:00-03:00"

    def pay(customer, amount, operation):
        return pmc.service.InformarPago(
            idEmpresa="1234", idOperacion=operation, idCliente=customer,
            idFactura="F-" + customer[1:], importe=amount, moneda="ARS", fechaPago=paid_at)

    assert pay("C1", "100.00", "OP-1").codigoRespuesta == 0
    assert pay("C2", "50.00", "OP-2").codigoRespuesta == 0
    assert pay("C4", "40.00", "OP-4").codigoRespuesta == 0
    assert pay("C5", "45.00", "OP-5").codigoRespuesta == 0
    assert pmc.service.AnularPago(
        idEmpresa="1234", idOperacion="OP-5", idCliente="C5", idFactura="F-5",
        importe="45.00", moneda="ARS", fechaAnulacion=paid_at).codigoRespuesta == 0
    report = write_cob(tmp_path / f"COB1234.{day + timedelta(1):%d%m%y}", "1234",
                       day + timedelta(1), [
                           dict(customer="C1", invoice="F-1", amount="100.00", paid_on=day,
                                control="0001"),
                           dict(customer="C2", invoice="F-2", amount="55.00", paid_on=day,
                                control="0002", channel="HB"),
                           dict(customer="C3", invoice="F-3", amount="30.00", paid_on=day,
                                control="0003"),
                           dict(customer="C6", invoice="F-6", amount="60.00", paid_on=day,
                                control="0006", channel="S1"),
                           dict(customer="C7", invoice="F-7", amount="10.00", paid_on=day,
                                control="0007"),
                           dict(customer="C8", invoice="F-8", amount="80.00", paid_on=day,
                                control="0008")])
    assert cli(server.database.url, "import-cob", str(report)).returncode == 0

    first = cli(server.database.url, "reconcile", "--date", day.isoformat(), "--format", "json",
                erp=erp)
    assert first.returncode == 1, first.stderr  # things need attention
    close = json.loads(first.stdout)["billers"][0]
    assert close["recorded_now"] == 4
    by_customer = {item["customer"]: item for item in close["items"]}
    assert {customer: item["state"] for customer, item in by_customer.items()} == {
        "C1": "matched", "C2": "differs", "C3": "reported, never notified",
        "C4": "notified, not reported", "C5": "reversed, not reported",
        "C6": "reported, never notified", "C7": "reported, never notified",
        "C8": "reported, never notified"}
    assert by_customer["C2"]["why"] == "amount: report 55.00 ARS, notice 50.00 ARS"
    # the payments only the report knew of: applied if they could be, else observed
    recorded = {row.customer_id: (row.status, row.response_code) for row in server.database.rows(
        "SELECT customer_id, status, response_code FROM payments WHERE origin = 'report'")}
    assert recorded == {"C3": ("applied", 0), "C6": ("applied", 0), "C7": ("observed", 3),
                        "C8": ("observed", 4)}
    # ... and forwarded to the ERP, once
    operations = [item["recorded_as"] for item in close["items"] if item["recorded_as"]]
    wait_until(lambda: all((erp.payment(op) or {}).get("applied") == 1 for op in operations),
               what="the recorded payments forwarded")

    # a late notice of a payment recorded from the report: answered 0, applied once
    late = pay("C6", "60.00", "OP-6")
    assert late.codigoRespuesta == 0
    status = pmc.service.ConsultarPago(idEmpresa="1234", idOperacion="OP-6")
    assert (status.estado, status.codigoRespuestaAviso) == ("APLICADO", 0)
    assert server.database.count("payments", customer_id="C6", status="applied") == 1
    assert server.database.count("payments", customer_id="C6", status="covered") == 1
    assert server.database.rows(
        "SELECT count(*) FROM erp_forwards f JOIN payments p ON p.pk = f.payment_pk "
        "WHERE p.operation_id = 'OP-6'")[0][0] == 0

    again = cli(server.database.url, "reconcile", "--date", day.isoformat(), "--format", "json",
                erp=erp)
    close = json.loads(again.stdout)["billers"][0]
    assert close["recorded_now"] == 0
    assert {item["customer"]: item["state"] for item in close["items"]}["C6"] == "matched"
    assert server.database.count("payments", origin="report") == 4
    table = cli(server.database.url, "reconcile", "--date", day.isoformat())
    assert table.returncode == 1
    assert "needing attention: 2" in table.stdout
    assert "notified, not reported" in table.stdout and "OP-4" in table.stdout
    csv_out = cli(server.database.url, "reconcile", "--date", day.isoformat(), "--format", "csv")
    assert csv_out.stdout.splitlines()[0].startswith("empresa,day,state,channel")
    assert len(csv_out.stdout.splitlines()) == 1 + 8


def test_a_notice_whose_report_is_not_in_yet_is_not_flagged(closing):
    server, _erp, _storage = closing
    pmc = zeep.Client(server.soap_url + "?wsdl")
    day = today()
    assert pmc.service.InformarPago(
        idEmpresa="1234", idOperacion="OP-W", idCliente="NOBODY", idFactura="F-1",
        importe="1.00", moneda="ARS", fechaPago=f"{day}T00:00:00-03:00").codigoRespuesta == 3
    result = cli(server.database.url, "reconcile", "--date", day.isoformat(), "--format", "json")
    assert result.returncode == 0, result.stdout
    (item,) = json.loads(result.stdout)["billers"][0]["items"]
    assert item["state"] == "notified, report not in yet"
