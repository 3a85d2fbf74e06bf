"""PMC's JSON API beside the Webservice, over real HTTP (``pmc-adapter serve``), on SQLite
and PostgreSQL: a payment notice in PMC's JSON is the same use case as InformarPago
(stored once per biller and operation ID, before the answer; a replay gets the first
answer; other data under the same ID is a 409 that stores nothing), the debt query its
JSON twin, the caller known by its access_token, and hostile bodies refused with
nothing written."""
from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from adapter.api import contract
from adapter.domain.calendar import BUSINESS_TZ
from adapter.domain.model import Currency, DueDate, Invoice, Origin
from adapter.storage.orm import PaymentRow
from support.data import today, unique
from support.servers import start_server, stop_server

TOKEN = "pmc-token-0123456789abcdef"
OTHER_TOKEN = "pmc-token-for-two-billers-42"
NOTICES_ONLY = "pmc-token-notices-only-000"
JSON = {"Content-Type": "application/json"}


def notice(**fields) -> dict:
    body = {"access_token": TOKEN, "customer_id": unique("C"), "invoice_id": "F-1",
            "currency": "ARS", "due_date": f"{today() + timedelta(10):%Y%m%d}",
            "amount": "10.00", "operation_id": unique("OP"), "description": "Pago"}
    body.update(fields)
    return {key: value for key, value in body.items() if value is not None}


def post(server, operation: str, body, headers=JSON, **kwargs) -> requests.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(f"{server.base_url}/api/v1/{operation}", data=data,
                         headers=headers, timeout=30, **kwargs)


def answer_of(reply: requests.Response) -> dict:
    """The answer, checked against the published contract (the 200s and the refusals)."""
    assert reply.headers["Content-Type"] == "application/json"
    body = reply.json()
    schema = "Refusal" if reply.status_code != 200 else None
    if schema is not None:
        assert contract.problem(schema, body) is None, body
        assert body["code"] == str(reply.status_code)
    return body


def payments(server, operation_id: str) -> list[tuple]:
    return [tuple(row) for row in server.database.rows(
        select(PaymentRow.biller_id, PaymentRow.amount, PaymentRow.status,
               PaymentRow.response_code, PaymentRow.paid_at_stated)
        .where(PaymentRow.operation_id == operation_id))]


# -- the same use case as InformarPago ----------------------------------------------------

def test_a_json_notice_is_stored_once_and_a_replay_gets_the_first_answer(server, billing_base,
                                                                          client):
    customer = unique("C")
    billing_base(Invoice("1234", customer, "F-9", Currency.ARS,
                         (DueDate(today() + timedelta(5), Decimal("2750.40")),),
                         Origin.BILLING_BASE))
    body = notice(customer_id=customer, invoice_id="F-9", amount=2750.40, company_id="1234")
    first = post(server, "payment_notify", body)
    assert first.status_code == 200, first.text
    stored = answer_of(first)
    assert contract.problem("PaymentStored", stored) is None
    assert (stored["code"], stored["message"]) == ("00", "OK")

    again = post(server, "payment_notify", {**body, "amount": "2750.4"})  # the same amount
    assert (again.status_code, again.json()) == (200, stored)
    assert payments(server, body["operation_id"]) == [
        ("1234", Decimal("2750.40"), "applied", 0, False)]

    # the Webservice sees it: ConsultarPago, and the invoice paid
    status = client.service.ConsultarPago(idEmpresa="1234", idOperacion=body["operation_id"])
    assert (status.estado, status.idRecibo, status.importe) == (
        "APLICADO", stored["receipt_id"], Decimal("2750.40"))
    assert client.service.ConsultarDeuda(idEmpresa="1234",
                                         idCliente=customer).codigoRespuesta == 2


def test_other_data_under_a_stored_operation_id_is_a_conflict_that_stores_nothing(server):
    body = notice(company_id="1234")
    assert post(server, "payment_notify", body).status_code == 200
    conflict = post(server, "payment_notify", {**body, "amount": "10.01"})
    assert conflict.status_code == 409
    assert body["operation_id"] in answer_of(conflict)["message"]
    assert [row[1:3] for row in payments(server, body["operation_id"])] == [
        (Decimal("10.00"), "observed")]
    # the same operation ID of another biller is another payment
    assert post(server, "payment_notify", {**body, "company_id": "5678"}).status_code == 200
    assert sorted(row[0] for row in payments(server, body["operation_id"])) == ["1234", "5678"]


def test_a_notice_unknown_to_the_billing_base_is_stored_and_observed(server, client):
    # an hour ago (a time of day, such as 10:30, is still to come after midnight)
    paid_at = (datetime.now(BUSINESS_TZ) - timedelta(hours=1)).replace(microsecond=0)
    body = notice(company_id="1234", payment_date=paid_at.isoformat(),
                  currency="0")  # pesos, as the network's files write them
    reply = post(server, "payment_notify", body)
    assert (reply.status_code, answer_of(reply)["code"]) == (200, "00")  # a fact, stored
    assert [row[2:] for row in payments(server, body["operation_id"])] == [
        ("observed", 3, True)]
    status = client.service.ConsultarPago(idEmpresa="1234", idOperacion=body["operation_id"])
    assert (status.estado, status.codigoRespuestaAviso, status.moneda) == ("OBSERVADO", 3, "ARS")
    assert status.fechaPago == paid_at


def test_a_storm_of_replays_on_three_workers_stores_one_notice(server):
    body = notice(company_id="1234")
    barrier = threading.Barrier(24)

    def send(_):
        barrier.wait()
        return post(server, "payment_notify", body)

    with ThreadPoolExecutor(24) as pool:
        replies = list(pool.map(send, range(24)))
    assert {reply.status_code for reply in replies} == {200}
    assert len({reply.json()["receipt_id"] for reply in replies}) == 1
    assert len(payments(server, body["operation_id"])) == 1


def test_the_debt_query_gives_the_three_outcomes(server, billing_base):
    customer = unique("C")
    billing_base(Invoice("1234", customer, "F-1", Currency.USD,
                         (DueDate(today() + timedelta(3), Decimal("99.90")),
                          DueDate(today() + timedelta(33), Decimal("120.00"))),
                         Origin.BILLING_BASE, description="Cuota 1"))
    ask = {"access_token": TOKEN, "company_id": "1234", "customer_id": customer}
    owed = answer_of(post(server, "debt_query", ask))
    assert contract.problem("DebtAnswer", owed) is None
    assert (owed["code"], owed["message"]) == ("00", "OK")
    assert owed["invoices"] == [{
        "invoice_id": "F-1", "customer_id": customer, "currency": "USD",
        "description": "Cuota 1", "amount_due": "99.90", "origin": "BASE",
        "due_dates": [{"due_date": str(today() + timedelta(3)), "amount": "99.90"},
                      {"due_date": str(today() + timedelta(33)), "amount": "120.00"}]}]
    unknown = answer_of(post(server, "debt_query", {**ask, "customer_id": unique("NOBODY")}))
    assert (unknown["code"], unknown["invoices"]) == ("01", [])
    assert answer_of(post(server, "debt_query", {**ask, "invoice_id": "F-404"}))["code"] == "03"
    billing_base(Invoice("1234", customer, "F-1", Currency.USD,
                         (DueDate(today() + timedelta(3), Decimal("99.90")),),
                         Origin.BILLING_BASE, paid=True))
    assert answer_of(post(server, "debt_query", ask))["code"] == "02"


# -- hostile and malformed bodies: a clear answer, nothing written -------------------------

HOSTILE = {
    "duplicate key": (b'{"amount": "1.00", "amount": "1000.00"}', 400, "appears twice"),
    "nested": (b'{"a":' * 5000 + b'1' + b'}' * 5000, 400, "nested deeper"),
    "NaN": (b'{"amount": NaN}', 400, "NaN is not a JSON number"),
    "huge number": (b'{"amount": 1' + b'0' * 4000 + b'}', 400, "beyond what this API reads"),
    "exponent": (b'{"amount": 1e999999999}', 400, "beyond what this API reads"),
    "byte order mark": (b'\xef\xbb\xbf{}', 400, "byte order mark"),
    "not UTF-8": (b'{"customer_id": "\xff"}', 400, "not UTF-8"),
    "not JSON": (b'<Envelope/>', 400, "not JSON"),
    "truncated": (b'{"amount": "1.00"', 400, "not JSON"),
    "an array": (b'[]', 400, "must be a JSON object"),
    "too large": (b'{"description": "' + b'x' * 70000 + b'"}', 413, "exceeds the limit"),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=str)
def test_a_hostile_body_gets_a_clear_answer_and_writes_nothing(server, case):
    payload, status, words = HOSTILE[case]
    before = server.database.count("payments")
    reply = post(server, "payment_notify", payload)
    assert reply.status_code == status, reply.text
    assert words in answer_of(reply)["message"]
    assert server.database.count("payments") == before
    assert server.alive()


OUTSIDE_THE_CONTRACT = {
    "amount with 3 decimals": ({"amount": "10.005"}, "amount"),
    "amount as a number with 3 decimals": ({"amount": 10.005}, "multiple of 0.01"),
    "negative amount": ({"amount": -1}, "amount"),
    "amount with a newline": ({"amount": "10.00\n"}, "amount"),
    "unknown currency": ({"currency": "EUR"}, "currency"),
    "not a calendar day": ({"due_date": "20260230"}, "not a calendar day"),
    "a day outside the pattern": ({"due_date": "2026/12/31"}, "due_date"),
    "space in the operation ID": ({"operation_id": "OP 1"}, "operation_id"),
    "control character in the customer": ({"customer_id": "C\x1b[2J"}, "customer_id"),
    "missing invoice": ({"invoice_id": None}, "'invoice_id' is a required property"),
    "unknown field": ({"channel": "web"}, "'channel' was unexpected"),
    "payment time without offset": ({"payment_date": "2026-12-07T10:00:00"}, "payment_date"),
    "biller not served": ({"company_id": "9999"}, "not served"),
}


@pytest.mark.parametrize("case", list(OUTSIDE_THE_CONTRACT), ids=str)
def test_a_body_outside_the_contract_names_the_field_and_writes_nothing(server, case):
    fields, words = OUTSIDE_THE_CONTRACT[case]
    body = notice(**{"company_id": "1234", **fields})
    reply = post(server, "payment_notify", body)
    assert reply.status_code == 400, reply.text
    assert words in answer_of(reply)["message"]
    assert payments(server, body["operation_id"]) == []


def test_the_media_type_and_the_method_are_checked(server):
    body = notice(company_id="1234")
    for content_type in ("text/plain", "application/json; charset=latin-1",
                         "application/json; charset=utf-8; charset=utf-8"):
        reply = post(server, "payment_notify", body, headers={"Content-Type": content_type})
        assert reply.status_code == 415, (content_type, reply.text)
    got = requests.get(f"{server.base_url}/api/v1/payment_notify", timeout=10)
    assert (got.status_code, got.headers["Allow"]) == (405, "POST")
    assert requests.get(f"{server.base_url}/api/v1/nothing", timeout=10).status_code == 404
    assert payments(server, body["operation_id"]) == []
    accepted = post(server, "payment_notify", body,
                    headers={"Content-Type": "application/json; charset=UTF-8"})
    assert accepted.status_code == 200


def test_the_contract_is_published_as_openapi_3_1(server):
    reply = requests.get(f"{server.base_url}/api/v1/openapi.json", timeout=10)
    assert reply.status_code == 200
    document = reply.json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {"/payment_notify", "/debt_query"}
    assert document["servers"] == [{"url": "/api/v1"}]


# -- who may call: the access_token ------------------------------------------------------

@pytest.fixture(scope="module")
def guarded(database_url, tmp_path_factory):
    """A server whose callers are known by their access_token; TLS ends at the trusted
    proxy in front (127.0.0.1), which says so with X-Forwarded-Proto."""
    workdir = tmp_path_factory.mktemp("guarded")
    config = workdir / "adapter.toml"
    config.write_text(f'''
[callers.pmc]
access_token = "{TOKEN}"
billers = ["1234"]
[callers.pmc-two]
access_token = "{OTHER_TOKEN}"
billers = ["1234", "5678"]
[callers.notices]
access_token = "{NOTICES_ONLY}"
operations = ["InformarPago"]
[callers.web]
password = "a-password-for-soap-only"
''')
    running = start_server(database_url, workdir, PMC_ADAPTER_CONFIG=str(config),
                           PMC_ADAPTER_TRUSTED_PROXIES="127.0.0.1/32",
                           PMC_ADAPTER_REQUEST_TIMEOUT=str(DEADLINE))
    yield running
    stop_server(running)


HTTPS = {**JSON, "X-Forwarded-Proto": "https"}
DEADLINE = 2  # seconds the guarded server gives a request to arrive


def test_the_caller_is_its_token_and_acts_for_its_one_biller(guarded):
    body = notice()  # no company_id: the caller's one biller
    reply = post(guarded, "payment_notify", body, headers=HTTPS)
    assert reply.status_code == 200, reply.text
    assert [row[0] for row in payments(guarded, body["operation_id"])] == ["1234"]
    other = notice(company_id="5678")
    refused = post(guarded, "payment_notify", other, headers=HTTPS)
    assert refused.status_code == 403 and "may not act for biller 5678" in refused.text
    assert payments(guarded, other["operation_id"]) == []


def test_a_caller_of_several_billers_names_the_company(guarded):
    body = notice(access_token=OTHER_TOKEN)
    missing = post(guarded, "payment_notify", body, headers=HTTPS)
    assert missing.status_code == 400 and "company_id is required" in missing.text
    named = post(guarded, "payment_notify", {**body, "company_id": "5678"}, headers=HTTPS)
    assert named.status_code == 200
    assert [row[0] for row in payments(guarded, body["operation_id"])] == ["5678"]


@pytest.mark.parametrize("token", [None, "", "pmc-token-0123456789abcdeF", TOKEN + "x",
                                   "a-password-for-soap-only", 42], ids=repr)
def test_a_missing_or_wrong_token_is_401_and_writes_nothing(guarded, token):
    body = notice(access_token=token)  # None: none
    reply = post(guarded, "payment_notify", body, headers=HTTPS)
    assert reply.status_code == 401
    assert answer_of(reply)["message"].startswith("authentication failed")
    assert payments(guarded, body["operation_id"]) == []
    log = guarded.log()
    assert TOKEN not in log and "a-password-for-soap-only" not in log


def test_a_token_over_plain_http_is_refused(guarded):
    body = notice()
    reply = post(guarded, "payment_notify", body)  # no X-Forwarded-Proto: plain HTTP
    assert reply.status_code == 401
    assert payments(guarded, body["operation_id"]) == []
    assert "access_token of pmc over plain HTTP" in guarded.log()


def test_a_caller_limited_to_notices_may_not_query(guarded):
    assert post(guarded, "payment_notify", notice(access_token=NOTICES_ONLY, company_id="1234"),
                headers=HTTPS).status_code == 200
    query = {"access_token": NOTICES_ONLY, "company_id": "1234", "customer_id": "C1"}
    refused = post(guarded, "debt_query", query, headers=HTTPS)
    assert refused.status_code == 403 and "may not call ConsultarDeuda" in refused.text
    assert post(guarded, "debt_query", {**query, "access_token": TOKEN},
                headers=HTTPS).status_code == 200


def test_a_body_that_stalls_is_cut_at_the_deadline_with_a_json_408(guarded):
    body = json.dumps(notice()).encode()
    head = (f"POST /api/v1/payment_notify HTTP/1.1\r\nHost: adapter\r\n"
            f"Content-Type: application/json\r\nX-Forwarded-Proto: https\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    url = urlsplit(guarded.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=DEADLINE + 5) as sock:
        started = time.monotonic()
        sock.sendall(head + body[:len(body) // 2])
        answer = b""
        while chunk := sock.recv(65536):  # until the server closes the connection
            answer += chunk
        waited = time.monotonic() - started
    top, _, payload = answer.partition(b"\r\n\r\n")
    assert top.startswith(b"HTTP/1.1 408 "), answer[:300]
    assert b"Content-Type: application/json" in top
    assert json.loads(payload) == {
        "code": "408", "message": f"the request did not arrive within {DEADLINE} s"}
    assert DEADLINE - 0.1 < waited < DEADLINE + 2
    assert payments(guarded, json.loads(body)["operation_id"]) == []


# -- durability ----------------------------------------------------------------------------

def test_no_answered_notice_is_lost_to_a_kill_9(own_database, tmp_path):
    """Answers are sent only after the commit: kill -9 of the master and every worker
    right after a burst loses none of the notices answered 200."""
    server = start_server(own_database, tmp_path)
    bodies = [notice(company_id="1234") for _ in range(48)]
    try:
        with ThreadPoolExecutor(12) as pool:
            replies = list(pool.map(lambda body: post(server, "payment_notify", body), bodies))
    finally:
        subprocess.run(["pkill", "-KILL", "-P", str(server.process.pid)], check=False)
        server.process.kill()
        server.process.wait(30)
    answered = {body["operation_id"]: reply.json()["receipt_id"]
                for body, reply in zip(bodies, replies) if reply.status_code == 200}
    assert len(answered) == 48
    stored = dict(server.database.rows("SELECT operation_id, receipt_id FROM payments"))
    assert stored == answered
    server.database.engine.dispose()


def test_storage_down_is_503_and_pmc_may_retry(tmp_path):
    database = tmp_path / "adapter.sqlite3"
    server = start_server(f"sqlite:///{database}", tmp_path)
    try:
        database.unlink()  # the file the settings name is gone: nothing can be stored
        reply = post(server, "payment_notify", notice(company_id="1234"))
        assert reply.status_code == 503
        body = answer_of(reply)
        assert "try again" in body["message"] and body["error_id"] in server.log()
        assert "Traceback" not in reply.text
    finally:
        stop_server(server)
