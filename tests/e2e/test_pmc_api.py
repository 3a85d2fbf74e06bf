"""Invoices created online reach PMC's collection API, over real HTTP, on SQLite and
PostgreSQL: ``pmc-adapter serve`` in front of the bundled simulator (``pmc-adapter
pmc-sim``, a process of its own) and the bundled ERP. Delivered once through the
outbox, in order per invoice, across a PMC outage, a slow PMC, a refusal and a kill -9
of the adapter; and the whole loop: AltaFactura -> PMC has it -> PMC notifies its
payment as JSON -> applied, forwarded to the ERP."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from lxml import etree
from sqlalchemy import select

from adapter.config import PmcApiSettings, load_settings
from adapter.domain.model import Currency, DueDate, Invoice, Origin, utcnow
from adapter.errors import ConfigurationError, PmcRejected, PmcUnavailable
from adapter.pmc.client import PmcApi, add_invoice_body, dumps
from adapter.storage.db import make_engine, upgrade_schema
from adapter.storage.orm import PaymentRow
from adapter.storage.unit_of_work import Storage

from support.data import today, unique
from support.servers import ErpSim, SimProcess, erp_env, start_server, stop_server, wait_until
from support.soap import TNS, envelope

PMC_TOKEN = "pmc-collection-token-0123456789"
NOTIFY_TOKEN = "pmc-notify-token-0123456789ab"
WEB = ("web", "web-password-1234")
ADAPTER = Path(sys.executable).with_name("pmc-adapter")


class PmcSim(SimProcess):
    """`pmc-adapter pmc-sim`, taking PMC_TOKEN."""

    command = "pmc-sim"

    @property
    def api_url(self) -> str:
        return self.base_url + "/recaudaciones-api/v1"

    def arguments(self) -> list[str]:
        return ["--token", PMC_TOKEN, "--state", str(self.workdir / "pmc-state.json")]

    def configure(self, fail_status: int = 0, latency_ms: int = 0) -> None:
        requests.post(self.base_url + "/_sim/config", timeout=10, json={
            "fail_status": fail_status, "latency_ms": latency_ms}).raise_for_status()

    def invoice(self, customer: str, invoice_id: str, company: str = "1234") -> dict | None:
        state = requests.get(self.base_url + "/_sim/state", timeout=10).json()
        return state["invoices"].get(company, {}).get(customer, {}).get(invoice_id)

    def notify(self, adapter_url: str, customer: str, invoice_id: str, **extra) -> dict:
        reply = requests.post(self.base_url + "/_sim/notify", timeout=60, json={
            "adapter_url": adapter_url, "access_token": NOTIFY_TOKEN, "company_id": "1234",
            "customer_id": customer, "invoice_id": invoice_id, **extra})
        return {"status": reply.status_code, **reply.json()}


def config_file(workdir: Path) -> Path:
    config = workdir / "adapter.toml"
    config.write_text(f'''
[callers.pmc]
access_token = "{NOTIFY_TOKEN}"
billers = ["1234"]
[callers.web]
password = "{WEB[1]}"
operations = ["AltaFactura", "ConsultarDeuda"]
''')
    return config


def pmc_env(pmc: PmcSim, workdir: Path) -> dict:
    """An adapter publishing to ``pmc``: 1 s timeout, quick retries; clear-text
    secrets accepted (TLS ends at a proxy, here none: loopback)."""
    return {"PMC_ADAPTER_CONFIG": str(config_file(workdir)),
            "PMC_ADAPTER_PMC_API_URL": pmc.api_url, "PMC_ADAPTER_PMC_API_TOKEN": PMC_TOKEN,
            "PMC_ADAPTER_PMC_API_TIMEOUT": "1", "PMC_ADAPTER_TLS_AT_PROXY": "true",
            "PMC_ADAPTER_FORWARD_POLL": "0.2", "PMC_ADAPTER_FORWARD_RETRY_BASE": "0.2",
            "PMC_ADAPTER_FORWARD_RETRY_MAX": "1", "PMC_ADAPTER_WORKERS": "2"}


@pytest.fixture(scope="module")
def loop(database_url, tmp_path_factory):
    """(server, pmc, erp): an adapter publishing to a PMC simulator, with an ERP."""
    workdir = tmp_path_factory.mktemp("pmc-loop")
    (workdir / "pmc").mkdir()
    (workdir / "erp").mkdir()
    pmc = PmcSim(workdir / "pmc").start()
    erp = ErpSim(workdir / "erp", []).start()
    try:
        server = start_server(database_url, workdir, **{**erp_env(erp), **pmc_env(pmc, workdir)})
        try:
            yield server, pmc, erp
        finally:
            stop_server(server)
    finally:
        pmc.stop()
        erp.stop()


@pytest.fixture
def pmc(loop):
    _, simulator, _ = loop
    yield simulator
    simulator.configure()  # behaving again for the next test


def alta(server, customer: str, invoice_id: str, *due, currency="ARS", **extra):
    fields = [("idEmpresa", "1234"), ("idCliente", customer), ("idFactura", invoice_id),
              ("moneda", currency),
              ("vencimientos", [("vencimiento", [("fecha", on.isoformat()),
                                                 ("importe", amount)]) for on, amount in due])]
    fields += list(extra.items())
    reply = requests.post(server.soap_url, auth=WEB, timeout=30,
                          data=envelope("AltaFactura", fields),
                          headers={"Content-Type": "text/xml; charset=utf-8",
                                   "SOAPAction": '"AltaFactura"'})
    assert reply.status_code == 200, reply.text
    code = etree.fromstring(reply.content).findtext(f".//{{{TNS}}}codigoRespuesta")
    assert code == "0", reply.text  # answered at once, whatever PMC's API is doing


def deliveries(server, customer: str) -> list[tuple]:
    return server.database.rows(
        "SELECT d.kind, d.status, d.attempts, d.last_error FROM pmc_deliveries d "
        "JOIN invoices i ON i.pk = d.invoice_pk WHERE i.customer_id = :c ORDER BY d.pk",
        c=customer)


def settled(server, customer: str, count: int):
    rows = deliveries(server, customer)
    return len(rows) == count and all(row[1] != "pending" for row in rows) and rows


# -- delivered once, as PMC's API wants it ---------------------------------------------

def test_an_invoice_created_online_reaches_pmc_once_in_its_terms(loop, pmc):
    server, _, _ = loop
    customer, day = unique("C"), today()
    alta(server, customer, "F-1", (day + timedelta(5), "1500.00"),
         (day + timedelta(15), "1650.50"), descripcion="Cuota diciembre",
         mensajePantalla="Cuota 12")
    wait_until(lambda: settled(server, customer, 1), what="the invoice delivered to PMC")
    assert deliveries(server, customer) == [("add", "delivered", 1, None)]
    got = pmc.invoice(customer, "F-1")
    assert (got["adds"], got["present"]) == (1, True)
    assert got["invoice"] == {
        "company_id": "1234", "customer_id": customer, "invoice_id": "F-1",
        "screen_description": "Cuota 12", "invoice_description": "Cuota diciembre",
        "currency": "ARS", "due_dates": [
            {"due_date": (day + timedelta(5)).isoformat(), "due_date_hour": "23:59",
             "amount": 1500.0},
            {"due_date": (day + timedelta(15)).isoformat(), "due_date_hour": "23:59",
             "amount": 1650.5}]}

    # the same AltaFactura again changes nothing: nothing to tell PMC
    alta(server, customer, "F-1", (day + timedelta(5), "1500.00"),
         (day + timedelta(15), "1650.50"), descripcion="Cuota diciembre",
         mensajePantalla="Cuota 12")
    assert len(deliveries(server, customer)) == 1
    # a replacement is sent, as it is
    alta(server, customer, "F-1", (day + timedelta(7), "1700.00"), currency="USD")
    wait_until(lambda: settled(server, customer, 2), what="the replacement delivered")
    got = pmc.invoice(customer, "F-1")
    assert got["adds"] == 2 and got["invoice"]["currency"] == "USD"
    assert [d["amount"] for d in got["invoice"]["due_dates"]] == [1700.0]


def test_a_pmc_outage_delays_nothing_and_loses_nothing(loop, pmc):
    server, _, _ = loop
    customer, day = unique("C"), today()
    pmc.configure(fail_status=503)
    alta(server, customer, "F-1", (day + timedelta(5), "10.00"))  # answered at once
    wait_until(lambda: (rows := deliveries(server, customer)) and rows[0][2] >= 2,
               what="two failed tries")
    kind, status, attempts, error = deliveries(server, customer)[0]
    assert (kind, status) == ("add", "pending") and "HTTP 503" in error
    assert pmc.invoice(customer, "F-1") is None
    pmc.configure()
    wait_until(lambda: settled(server, customer, 1), what="the invoice delivered after it")
    assert deliveries(server, customer)[0][1] == "delivered"
    assert pmc.invoice(customer, "F-1")["adds"] == 1


def test_a_slow_pmc_is_cut_at_the_timeout_and_the_invoice_sent_again(loop, pmc):
    server, _, _ = loop
    customer, day = unique("C"), today()
    pmc.configure(latency_ms=1500)  # PMC takes it, answers after our 1 s
    alta(server, customer, "F-1", (day + timedelta(5), "10.00"))
    wait_until(lambda: (rows := deliveries(server, customer)) and rows[0][2] >= 1,
               what="a try cut at the timeout")
    # cut by the read timeout or the whole call's deadline, whichever comes first
    assert re.search(r"Read timed out|no complete answer within 1 s",
                     deliveries(server, customer)[0][3])
    pmc.configure()
    wait_until(lambda: settled(server, customer, 1), what="the invoice delivered")
    got = pmc.invoice(customer, "F-1")
    assert got["adds"] >= 2 and got["present"]  # at least once: PMC replaces it, same terms


def test_an_invoice_pmc_refuses_is_kept_for_a_person_not_retried(loop, pmc):
    server, _, _ = loop
    customer, day = unique("C"), today()
    pmc.configure(fail_status=422)
    alta(server, customer, "F-1", (day + timedelta(5), "10.00"))
    wait_until(lambda: settled(server, customer, 1), what="the refusal recorded")
    ((kind, status, attempts, error),) = deliveries(server, customer)
    assert (kind, status, attempts) == ("add", "rejected", 1)
    assert "add_invoice refused (HTTP 422)" in error
    listing = subprocess.run(
        [str(ADAPTER), "forwards", "--to", "pmc", "--status", "rejected", "--json"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PMC_ADAPTER_DATABASE_URL": server.database.url})
    assert listing.returncode == 0, listing.stderr
    mine = [row for row in json.loads(listing.stdout) if row["customer_id"] == customer]
    assert [(row["invoice_id"], row["kind"], row["status"]) for row in mine] == [
        ("F-1", "add", "rejected")]


def test_metrics_count_the_pmc_outbox(loop, pmc):
    server, _, _ = loop
    pmc.configure(fail_status=503)
    customer = unique("C")
    alta(server, customer, "F-1", (today() + timedelta(5), "10.00"))
    wait_until(lambda: (rows := deliveries(server, customer)) and rows[0][2] >= 1,
               what="a failed try")
    scraped = requests.get(server.base_url + "/metrics", timeout=10).text
    assert any(line.startswith('pmc_outbox_items{destination="pmc",state="failing"}')
               for line in scraped.splitlines()), scraped
    pmc.configure()
    wait_until(lambda: settled(server, customer, 1), what="delivered")


# -- the whole loop ----------------------------------------------------------------

def test_the_whole_loop_invoice_to_pmc_payment_back_and_to_the_erp(loop, pmc):
    server, _, erp = loop
    customer, day = unique("C"), today()
    alta(server, customer, "F-9", (day + timedelta(3), "275.40"), descripcion="Abono")
    wait_until(lambda: pmc.invoice(customer, "F-9"), what="PMC to have the invoice")
    operation = unique("OP")
    paid = pmc.notify(server.base_url, customer, "F-9", operation_id=operation)
    assert paid["status"] == 200, paid
    assert paid["answer"]["code"] == "00" and paid["answer"]["receipt_id"]
    assert paid["sent"]["amount"] == "275.40"
    assert server.database.rows(select(PaymentRow.status, PaymentRow.amount).where(
        PaymentRow.operation_id == operation)) == [("applied", Decimal("275.40"))]
    wait_until(lambda: erp.payment(operation), what="the payment forwarded to the ERP")
    assert erp.payment(operation)["received"] == 1
    # and PMC sending it again gets the first answer, nothing stored twice
    again = pmc.notify(server.base_url, customer, "F-9", operation_id=operation)
    assert again["answer"] == paid["answer"]
    assert server.database.count("payments", operation_id=operation) == 1


def test_an_invoice_paid_by_a_person_s_resolution_leaves_pmc_after_its_add(loop, pmc):
    """PMC down: the add waits; a person applies an observed payment to the invoice; the
    removal waits behind the add; PMC back: added, then removed, in that order."""
    server, _, _ = loop
    customer, day = unique("C"), today()
    pmc.configure(fail_status=503)
    alta(server, customer, "F-1", (day + timedelta(5), "80.00"))
    # a payment of the same client, for an invoice nobody has: observed
    notice = {"access_token": NOTIFY_TOKEN, "customer_id": customer, "invoice_id": "F-X",
              "currency": "ARS", "amount": "80.00", "operation_id": unique("OP")}
    reply = requests.post(server.base_url + "/api/v1/payment_notify", timeout=30,
                          data=json.dumps(notice), headers={"Content-Type": "application/json"})
    assert reply.status_code == 200, reply.text
    ((receipt,),) = server.database.rows(
        "SELECT receipt_id FROM payments WHERE operation_id = :o", o=notice["operation_id"])
    resolved = subprocess.run(
        [str(ADAPTER), "resolve", receipt, "--apply-to", "F-1", "--operator", "ana",
         "--reason", "the client wrote the wrong invoice"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PMC_ADAPTER_DATABASE_URL": server.database.url})
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    assert [row[0] for row in deliveries(server, customer)] == ["add", "remove"]
    pmc.configure()
    wait_until(lambda: settled(server, customer, 2), what="both delivered")
    assert [row[:2] for row in deliveries(server, customer)] == [
        ("add", "delivered"), ("remove", "delivered")]
    got = pmc.invoice(customer, "F-1")
    assert (got["adds"], got["removes"], got["present"]) == (1, 1, False)


# -- kill -9 ---------------------------------------------------------------------------

def test_a_kill_9_after_the_answer_loses_no_invoice(own_database, tmp_path):
    (tmp_path / "pmc").mkdir()
    simulator = PmcSim(tmp_path / "pmc").start()
    try:
        simulator.configure(fail_status=503)
        env = pmc_env(simulator, tmp_path)
        server = start_server(own_database, tmp_path, **env)
        customer = unique("C")
        try:
            alta(server, customer, "F-1", (today() + timedelta(5), "10.00"))
            # the answer came: the invoice and its delivery are stored; then the whole
            # server dies at once, mid-retries
            subprocess.run(["pkill", "-KILL", "-P", str(server.process.pid)], check=False)
            server.process.kill()
            server.process.wait(timeout=30)
        finally:
            if server.process.poll() is None:
                stop_server(server)
        assert simulator.invoice(customer, "F-1") is None
        simulator.configure()
        again = start_server(own_database, tmp_path, **env)
        try:
            # the killed workers' claims run out (lease 30 s): then it is delivered
            wait_until(lambda: settled(again, customer, 1), timeout=90,
                       what="the invoice delivered by the new server")
            assert simulator.invoice(customer, "F-1")["adds"] == 1
        finally:
            stop_server(again)
    finally:
        simulator.stop()


# -- the client alone, against the simulator --------------------------------------------

@pytest.fixture(scope="module")
def simulator(tmp_path_factory):
    running = PmcSim(tmp_path_factory.mktemp("pmc-alone")).start()
    yield running
    running.stop()


def an_invoice(**changes) -> Invoice:
    values = dict(biller_id="1234", customer_id=unique("C"), invoice_id="F-1",
                  currency=Currency.ARS, due_dates=(DueDate(today(), Decimal("9.99")),),
                  origin=Origin.CREATED_ONLINE, description="d", screen_message="s")
    values.update(changes)
    return Invoice(**values)


def test_a_wrong_token_is_retried_never_dropped(simulator):
    api = PmcApi(PmcApiSettings(simulator.api_url, "not-the-token-at-all-00", 2.0))
    with pytest.raises(PmcUnavailable, match="refused our token .HTTP 401.: check pmc_api_token"):
        api.add_invoice(an_invoice())


def test_echo_add_and_remove_against_the_simulator(simulator):
    api = PmcApi(PmcApiSettings(simulator.api_url, PMC_TOKEN, 2.0))
    assert api.echo("HOLA") == "HOLA"
    invoice = an_invoice()
    assert api.add_invoice(invoice).startswith("00 ")
    assert api.remove_invoice(invoice).startswith("00 ")
    assert api.remove_invoice(invoice).startswith("not at PMC")  # gone: done


def test_an_invoice_outside_pmc_s_contract_is_refused_before_any_call(simulator):
    api = PmcApi(PmcApiSettings(simulator.api_url, PMC_TOKEN, 2.0))
    with pytest.raises(PmcRejected, match="outside PMC's contract: screen_description"):
        api.add_invoice(an_invoice(screen_message="x" * 16))


def test_amounts_are_json_numbers_written_from_decimals():
    body = add_invoice_body(an_invoice(due_dates=(DueDate(today(), Decimal("0.10")),)))
    assert b'"amount":0.10' in dumps(body)
    assert json.loads(dumps(body), parse_float=Decimal)["due_dates"][0]["amount"] == \
        Decimal("0.10")


def test_check_config_tries_echo_with_the_token(simulator, tmp_path):
    def check(token: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(ADAPTER), "check-config"], capture_output=True, text=True,
                              timeout=60, env={
                                  **os.environ, "PMC_ADAPTER_PMC_API_URL": simulator.api_url,
                                  "PMC_ADAPTER_PMC_API_TOKEN": token,
                                  "PMC_ADAPTER_DATABASE_URL":
                                      f"sqlite:///{tmp_path / 'c.sqlite3'}"})
    good = check(PMC_TOKEN)
    assert f"ok   PMC API (global): {simulator.api_url}: echo answered" in good.stdout
    assert PMC_TOKEN not in good.stdout  # masked
    bad = check("a-token-pmc-never-gave-00")
    assert bad.returncode == 1
    assert "FAIL PMC API (global)" in bad.stdout and "HTTP 401" in bad.stdout


# -- settings and storage -------------------------------------------------------------

@pytest.mark.parametrize("env, problem", [
    ({"PMC_ADAPTER_PMC_API_URL": "https://pmc.example/v1"}, "pmc_api_url needs pmc_api_token"),
    ({"PMC_ADAPTER_PMC_API_URL": "http://pmc.example/v1", "PMC_ADAPTER_PMC_API_TOKEN":
      PMC_TOKEN}, "must be https"),
    ({"PMC_ADAPTER_PMC_API_URL": "https://user:pw@pmc.example/v1",
      "PMC_ADAPTER_PMC_API_TOKEN": PMC_TOKEN}, "without credentials"),
    ({"PMC_ADAPTER_PMC_API_URL": "https://pmc.example/v1", "PMC_ADAPTER_PMC_API_TOKEN":
      "short"}, "at least 16"),
    ({"PMC_ADAPTER_PMC_API_TIMEOUT": "0"}, "must be positive"),
])
def test_pmc_api_settings_are_checked(env, problem):
    with pytest.raises(ConfigurationError, match=problem):
        load_settings(environ=env)


def test_a_biller_section_has_its_own_pmc_api(tmp_path):
    config = tmp_path / "a.toml"
    config.write_text(f'[billers.5678]\npmc_api_url = "https://pmc.example/v1/"\n'
                      f'pmc_api_token = "{PMC_TOKEN}"\n')
    settings = load_settings(config, environ={})
    assert not settings.pmc_api_for("1234").configured
    assert settings.pmc_api_for("5678").url == "https://pmc.example/v1"
    assert PMC_TOKEN not in repr(settings)


def test_one_invoice_s_deliveries_go_in_order(database_url, own_database):
    engine = make_engine(own_database)
    upgrade_schema(engine)
    storage = Storage(engine)
    try:
        with storage.unit_of_work() as uow:
            first = uow.invoices.save(an_invoice())
            other = uow.invoices.save(an_invoice())
            uow.pmc_deliveries.enqueue("1234", first, "add")
            uow.pmc_deliveries.enqueue("1234", first, "remove")
            uow.pmc_deliveries.enqueue("1234", other, "add")
            uow.commit()
        now = utcnow()
        with storage.unit_of_work() as uow:
            claimed = uow.pmc_deliveries.claim_due("w", now, now + timedelta(seconds=30), 10)
            uow.commit()
        assert sorted(task.kind for task in claimed) == ["add", "add"]  # not the remove
        with storage.unit_of_work() as uow:
            for task in claimed:
                assert uow.pmc_deliveries.delivered(task, "w", "00 OK")
            after = uow.pmc_deliveries.claim_due("w", now, now + timedelta(seconds=30), 10)
            uow.commit()
        assert [task.kind for task in after] == ["remove"]
    finally:
        engine.dispose()
