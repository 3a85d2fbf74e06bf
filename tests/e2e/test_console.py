"""The back office over HTTP, against a real server (gunicorn, the database): who gets
in, what a viewer, a forged form or a SOAP caller's credentials can (not) do, the
session's cookie and timeout, the login rate limit, the journal."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import zeep
from zeep.transports import Transport

from support.console import (CALLER, PASSWORDS, console_server, csrf_of, login,
    observed_payment, soap_client)
from support.data import unique
from support.databases import fresh_postgres_database


@pytest.fixture(scope="module")
def console(database_url, tmp_path_factory):
    """A server of its own, on a database of its own: the failed logins of other tests'
    servers (all from 127.0.0.1) must not count against these."""
    folder = tmp_path_factory.mktemp("console")
    if database_url.startswith("sqlite"):
        with console_server(f"sqlite:///{folder / 'console.sqlite3'}", folder,
                            "console_login_attempts = 50\n") as server:
            yield server
        return
    with fresh_postgres_database(database_url, "pmc_adapter_console") as url, \
            console_server(url, folder, "console_login_attempts = 50\n") as server:
        yield server


@pytest.fixture(scope="module")
def pmc(console):
    return soap_client(console)


def observed_status(server, receipt: str) -> str:
    (row,) = server.database.rows("SELECT status FROM payments WHERE receipt_id = :r",
                                  r=receipt)
    return row[0]


def test_without_a_session_every_page_leads_to_the_login_form(console):
    for page in ("/console/", "/console/observed", "/console/outbox", "/console/payments",
                 "/console/reconciliation"):
        answer = requests.get(console.base_url + page, allow_redirects=False)
        assert (answer.status_code, answer.headers["Location"]) == (303, "/console/login"), page
    form = requests.get(console.base_url + "/console/login")
    assert form.status_code == 200
    for field in ('name="username"', 'name="password" type="password"', 'type="hidden" name="csrf"'):
        assert field in form.text
    assert "default-src 'none'" in form.headers["Content-Security-Policy"]
    assert form.headers["X-Frame-Options"] == "DENY"
    cookie = form.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie


def test_a_login_opens_a_session_whose_cookie_the_page_cannot_read(console):
    browser = requests.Session()
    token = csrf_of(browser.get(console.base_url + "/console/login").text)
    wrong = browser.post(console.base_url + "/console/login", allow_redirects=False,
                         data={"csrf": token, "username": "ana", "password": "not-it"})
    assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
    token = csrf_of(wrong.text)
    signed = browser.post(console.base_url + "/console/login", allow_redirects=False,
                          data={"csrf": token, "username": "ana", "password": PASSWORDS["ana"]})
    assert signed.status_code == 303 and signed.headers["Location"] == "/console/"
    session_cookie = [value for key, value in signed.raw.headers.items()
                      if key.lower() == "set-cookie" and "pmc_console_session=" in value]
    (cookie,) = session_cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    today = browser.get(console.base_url + "/console/")
    assert today.status_code == 200 and "at a glance" in today.text
    logout = browser.post(console.base_url + "/console/logout", allow_redirects=False,
                          data={"csrf": csrf_of(today.text)})
    assert logout.status_code == 303
    again = browser.get(console.base_url + "/console/", allow_redirects=False)
    assert again.status_code == 303  # the session is gone on the server, not only here


def test_a_login_form_without_its_token_is_refused(console):
    answer = requests.post(console.base_url + "/console/login", allow_redirects=False,
                           data={"username": "ana", "password": PASSWORDS["ana"]})
    assert answer.status_code == 403 and "pmc_console_session" not in \
        answer.headers.get("Set-Cookie", "")


def test_a_viewer_sees_but_cannot_decide(console, pmc):
    notice = observed_payment(pmc, unique("V"))
    viewer = login(console, "vic")
    page = viewer.get(console.base_url + "/console/observed")
    assert notice.idRecibo in page.text and "Apply to this invoice" not in page.text
    answer = viewer.post(console.base_url + "/console/observed/dismiss",
                         data={"csrf": csrf_of(page.text), "receipt": notice.idRecibo,
                               "reason": "a viewer tries"})
    assert answer.status_code == 403 and "viewer" in answer.text
    assert observed_status(console, notice.idRecibo) == "observed"


def test_a_forged_form_without_the_session_token_changes_nothing(console, pmc):
    notice = observed_payment(pmc, unique("X"))
    resolver = login(console, "ana")
    for forged in ({}, {"csrf": "guessed"}):
        answer = resolver.post(console.base_url + "/console/observed/dismiss",
                               data={**forged, "receipt": notice.idRecibo, "reason": "forged"})
        assert answer.status_code == 403 and "nothing was changed" in answer.text
    assert observed_status(console, notice.idRecibo) == "observed"
    rows = console.database.rows("SELECT operator, ok, detail FROM console_events WHERE "
                                 "action = 'POST /console/observed/dismiss' AND "
                                 "detail LIKE '%CSRF%'")
    assert len(rows) >= 2 and all(row[0] == "ana" and not row[1] for row in rows)


def test_a_resolver_applies_once_and_the_journal_says_who(console, pmc):
    customer = unique("R")
    notice = observed_payment(pmc, customer)
    resolver = login(console, "ana")
    page = resolver.get(console.base_url + "/console/observed")
    form = {"csrf": csrf_of(page.text), "receipt": notice.idRecibo,
            "invoice": f"{customer}-F1", "customer": customer, "reason": "mistyped"}
    done = resolver.post(console.base_url + "/console/observed/apply", data=form,
                         allow_redirects=False)
    assert done.status_code == 303
    shown = resolver.get(console.base_url + done.headers["Location"])
    assert f"Payment {notice.idRecibo} applied to invoice {customer}-F1." in shown.text
    glance = resolver.get(console.base_url + "/console/").text
    assert "Biller 1234" in glance and "<svg" in glance and "observed (3" in glance
    assert observed_status(console, notice.idRecibo) == "resolved"
    assert pmc.service.ConsultarDeuda(idEmpresa="1234", idCliente=customer).codigoRespuesta == 2
    twice = resolver.post(console.base_url + "/console/observed/apply", data=form)
    assert twice.status_code == 409 and "was already applied by ana" in twice.text
    (event,) = console.database.rows(
        "SELECT operator, address, ok, detail FROM console_events WHERE action = 'apply' "
        "AND ok AND detail LIKE :d", d=f"payment {notice.idRecibo}%")
    assert event[0] == "ana" and event[1] == "127.0.0.1" and "mistyped" in event[3]


def test_callers_and_operators_are_kept_apart(console):
    # a SOAP caller's name and password do not sign in, nor does its HTTP Basic header
    browser = requests.Session()
    token = csrf_of(browser.get(console.base_url + "/console/login").text)
    refused = browser.post(console.base_url + "/console/login", allow_redirects=False,
                           data={"csrf": token, "username": CALLER[0], "password": CALLER[1]})
    assert refused.status_code == 401
    basic = requests.get(console.base_url + "/console/", auth=CALLER, allow_redirects=False)
    assert basic.status_code == 303 and basic.headers["Location"] == "/console/login"
    # an operator's credentials are nobody to SOAP
    session = requests.Session()
    session.auth = ("ana", PASSWORDS["ana"])
    operator_soap = zeep.Client(console.soap_url + "?wsdl",
                                transport=Transport(session=session))
    with pytest.raises(zeep.exceptions.Fault) as fault:
        operator_soap.service.ConsultarDeuda(idEmpresa="1234", idCliente="C1")
    assert fault.value.code.endswith("Client.NotAuthenticated")


def test_pages_answer_and_escape_what_they_show(console, pmc):
    hostile = '<script>alert(1)</script>'
    resolver = login(console, "ana")
    found = resolver.get(console.base_url + "/console/payments",
                         params={"operation": hostile, "customer": hostile})
    assert found.status_code == 200 and hostile not in found.text
    assert "&lt;script&gt;" in found.text
    for page in ("/console/", "/console/observed", "/console/outbox",
                 "/console/reconciliation", "/console/static/console.css"):
        assert resolver.get(console.base_url + page).status_code == 200, page
    assert resolver.get(console.base_url + "/console/nowhere").status_code == 404
    assert resolver.get(console.base_url + "/console/", params={"day": "x"}).status_code == 400
    wrong_type = resolver.post(console.base_url + "/console/outbox/retry", data="{}",
                               headers={"Content-Type": "application/json"})
    assert wrong_type.status_code == 415


def test_idle_sessions_end_and_failed_logins_are_limited(own_database, tmp_path):
    with console_server(own_database, tmp_path, "console_session_timeout = 1.5\n"
                                                "console_login_attempts = 2\n") as server:
        browser = login(server, "ana")
        assert browser.get(server.base_url + "/console/", allow_redirects=False) \
            .status_code == 200
        time.sleep(2.5)
        assert browser.get(server.base_url + "/console/", allow_redirects=False) \
            .status_code == 303
        attacker = requests.Session()
        for attempt in range(2):
            token = csrf_of(attacker.get(server.base_url + "/console/login").text)
            assert attacker.post(server.base_url + "/console/login", data={
                "csrf": token, "username": "vic", "password": f"guess-{attempt}"}
            ).status_code == 401
        token = csrf_of(attacker.get(server.base_url + "/console/login").text)
        blocked = attacker.post(server.base_url + "/console/login", data={
            "csrf": token, "username": "vic", "password": PASSWORDS["vic"]})
        assert blocked.status_code == 429  # even the right password, for a while
        assert server.alive()


def test_no_operator_no_console(server):
    assert requests.get(server.base_url + "/console/", allow_redirects=False) \
        .status_code == 404


def test_operator_password_prints_a_hash_that_the_settings_take(tmp_path):
    from adapter.config import load_settings
    from adapter.passwords import verify_password

    command = [str(Path(sys.executable).with_name("pmc-adapter")), "operator-password"]
    made = subprocess.run(command, input="a-long-password\n", capture_output=True, text=True,
                          timeout=60)
    assert made.returncode == 0, made.stderr
    encoded = made.stdout.splitlines()[-1]
    assert verify_password("a-long-password", encoded)
    assert not verify_password("a-long-passwore", encoded)
    short = subprocess.run(command, input="short\n", capture_output=True, text=True,
                           timeout=60)
    assert short.returncode == 2 and "at least 10" in short.stderr
    path = tmp_path / "a.toml"
    path.write_text(f'[operators.ana]\npassword_hash = "{encoded}"\nrole = "resolver"\n')
    assert load_settings(path, environ={}).operators["ana"].role == "resolver"
    path.write_text('[operators.ana]\npassword_hash = "plain-text"\n')
    from adapter.config import ConfigurationError
    with pytest.raises(ConfigurationError, match="not an scrypt hash"):
        load_settings(path, environ={})
    path.write_text(f'[operators.ana]\npassword_hash = "{encoded}"\nrole = "admin"\n')
    with pytest.raises(ConfigurationError, match="role"):
        load_settings(path, environ={})


def test_the_reconciliation_page_shows_the_differences_first(console, pmc, tmp_path):
    import os
    from datetime import timedelta

    from support.cobgen import write_cob
    from support.data import today

    day, matched, differs, reported = today(), unique("M"), unique("D"), unique("O")
    observed_payment(pmc, matched)
    observed_payment(pmc, differs)
    report_day = day + timedelta(days=1)  # a report covers the days before its own
    path = write_cob(tmp_path / f"COB1234.{report_day:%d%m%y}", "1234", report_day, [
        dict(customer=matched, invoice=f"{matched}-TYPO", amount="150.00", paid_on=day,
             control="0001"),
        dict(customer=differs, invoice=f"{differs}-TYPO", amount="99.00", paid_on=day,
             control="0002"),
        dict(customer=reported, invoice=f"{reported}-F9", amount="12.00", paid_on=day,
             control="0003")])
    imported = subprocess.run(
        [str(Path(sys.executable).with_name("pmc-adapter")), "import-cob", str(path)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PMC_ADAPTER_DATABASE_URL": console.database.url,
             "PMC_ADAPTER_EMPRESAS": "1234"})
    assert imported.returncode == 0, imported.stderr
    viewer = login(console, "vic")
    page = viewer.get(console.base_url + "/console/reconciliation",
                      params={"biller": "1234", "day": day.isoformat()}).text
    assert path.name in page
    rows = [row for row in page.split("<tr")[1:] if matched in row or differs in row
            or reported in row]
    states = [next(state for state in ("differs", "matched", "reported, never notified")
                   if f"<td>{state}</td>" in row) for row in rows]
    assert states[0] == "differs" and sorted(states[1:]) == ["matched",
                                                             "reported, never notified"]
    assert f"operation=OP-{differs}" in rows[0]  # a link to the payment


def test_the_console_refuses_addresses_outside_console_networks(tmp_path):
    from adapter.app import make_wsgi_app
    from adapter.config import load_settings
    from support.console import config

    settings = load_settings(config(tmp_path, 'console_networks = ["10.9.0.0/16"]\n'
                                    f'database_url = "sqlite:///{tmp_path / "n.sqlite3"}"\n'),
                             environ={})
    from adapter.storage.db import make_engine, upgrade_schema
    upgrade_schema(make_engine(settings.database_url))
    app = make_wsgi_app(settings)
    answers = {}
    for address in ("127.0.0.1", "10.9.3.4"):
        def start_response(status, headers, address=address):
            answers[address] = status
        app({"REQUEST_METHOD": "GET", "PATH_INFO": "/console/login", "REMOTE_ADDR": address,
             "wsgi.url_scheme": "http", "QUERY_STRING": ""}, start_response)
    assert answers == {"127.0.0.1": "403 Forbidden", "10.9.3.4": "200 OK"}


def test_a_payments_history_shows_its_reversal(console, pmc):
    from datetime import datetime, timedelta

    from adapter.domain.calendar import BUSINESS_TZ
    from support.data import today

    customer = unique("H")
    assert pmc.service.AltaFactura(
        idEmpresa="1234", idCliente=customer, idFactura="F1", moneda="ARS",
        vencimientos={"vencimiento": [{"fecha": today() + timedelta(20), "importe": "80.00"}]}
    ).codigoRespuesta == 0
    assert pmc.service.InformarPago(
        idEmpresa="1234", idOperacion=f"OP-{customer}", idCliente=customer, idFactura="F1",
        importe="80.00", moneda="ARS", fechaPago=datetime.now(BUSINESS_TZ)
    ).codigoRespuesta == 0
    reversed_ = pmc.service.AnularPago(
        idEmpresa="1234", idOperacion=f"OP-{customer}", idCliente=customer, idFactura="F1",
        importe="80.00", moneda="ARS", fechaAnulacion=datetime.now(BUSINESS_TZ),
        motivo="the payer's bank reversed it")
    assert reversed_.codigoRespuesta == 0
    page = login(console, "vic").get(console.base_url + "/console/payments",
                                     params={"customer": customer}).text
    assert f"OP-{customer}" in page and "<td>reversed</td>" in page
    section = page.split("Reversals (AnularPago)")[1].split("</table>")[0]
    assert "<td>applied</td>" in section and f"OP-{customer}" in section


def test_check_config_warns_of_a_console_open_to_anyone_or_in_clear(tmp_path):
    from adapter.checks import cautions
    from adapter.config import load_settings
    from support.console import config

    plain = " ".join(cautions(load_settings(config(tmp_path), environ={})))
    assert "the console answers any address" in plain
    assert "operators are configured without HTTPS" not in plain  # tls_at_proxy is set
    closed = " ".join(cautions(load_settings(config(tmp_path, 'console_networks = '
                                                    '["10.0.0.0/8"]\n'), environ={})))
    assert "the console answers any address" not in closed
    path = tmp_path / "clear.toml"
    path.write_text(config(tmp_path).read_text().replace("tls_at_proxy = true", ""))
    assert "their passwords and session cookies would cross the network in clear" in \
        " ".join(cautions(load_settings(path, environ={})))
