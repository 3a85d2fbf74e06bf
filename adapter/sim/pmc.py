"""``pmc-adapter pmc-sim``: a simulator of PMC's collection API over real HTTP.

It serves, under ``/recaudaciones-api/v1``, what the adapter calls: ``POST
add_invoice`` (publish or replace an invoice), ``POST remove_invoice`` (404 when it
does not have it) and ``GET echo/{msg}``, each call checked against the contract the
adapter follows (``adapter/api/pmc-collection.json``: a body outside it is answered
400) and authenticated by ``Authorization: Bearer <--token>`` (401 otherwise). It is
for demos, tests and QA, with knobs to misbehave (``POST /_sim/config``, JSON):

* ``fail_status`` N: every call is answered with HTTP N before anything is done
  (0: behave);
* ``latency_ms`` N: every call takes N ms longer, after the work is done (a slow PMC:
  the adapter's timeout runs out although PMC has the invoice);
* being stopped (and started again: ``--state FILE`` keeps its invoices).

And, so that a demo runs the whole loop, PMC's side of a payment: ``POST /_sim/notify``
(JSON ``{"adapter_url", "access_token", "company_id", "customer_id", "invoice_id"}``,
optionally ``"operation_id"``, ``"amount"``) pays an invoice it has, at its first
due date's amount, by sending ``payment_notify`` to the adapter; it answers with the
adapter's status and answer. ``GET /_sim/state`` shows what it has::

    {"invoices": {"<company>": {"<customer>": {"<invoice>": {"invoice": {...},
     "adds": 1, "removes": 0, "present": true}}}},
     "calls": {"add_invoice": 1, "remove_invoice": 0, "echo": 0, "refused": 0}}
"""
from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from adapter.api import contract
from adapter.pmc.client import dumps

log = logging.getLogger(__name__)

PREFIX = "/recaudaciones-api/v1"
JSON = "application/json"
MAX_BODY = 64 * 1024


def _answer(status: str, body: Any) -> tuple[str, str, bytes]:
    return status, JSON, dumps(body)


@dataclass
class SimulatedPmc:
    token: str
    state_file: Path | None = None
    fail_status: int = 0
    latency_ms: int = 0
    invoices: dict[str, dict[str, dict[str, dict]]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("add_invoice", "remove_invoice", "echo", "refused"), 0))

    def __post_init__(self):
        self._lock = threading.Lock()
        if self.state_file and self.state_file.exists():
            saved = json.loads(self.state_file.read_text(), parse_float=Decimal)
            self.invoices, self.calls = saved["invoices"], saved["calls"]

    # -- WSGI ----------------------------------------------------------------------

    def __call__(self, environ, start_response):
        status, content_type, body = self._route(environ)
        start_response(status, [("Content-Type", content_type),
                                ("Content-Length", str(len(body)))])
        return [body]

    def _route(self, environ) -> tuple[str, str, bytes]:
        path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
        if path == "/health":
            return _answer("200 OK", {"status": "ok"})
        if path == "/_sim/state" and method == "GET":
            return _answer("200 OK", self.state())
        if path == "/_sim/config" and method == "POST":
            knobs = json.loads(self._body(environ) or b"{}")
            with self._lock:
                self.fail_status = int(knobs.get("fail_status", self.fail_status))
                self.latency_ms = int(knobs.get("latency_ms", self.latency_ms))
            return _answer("200 OK", {"fail_status": self.fail_status,
                                      "latency_ms": self.latency_ms})
        if path == "/_sim/notify" and method == "POST":
            return self._notify(json.loads(self._body(environ)))
        if not path.startswith(PREFIX + "/"):
            return _answer("404 Not Found", {"code": "404", "message": "not found"})
        return self._api(environ, path[len(PREFIX):], method)

    @staticmethod
    def _body(environ) -> bytes:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        return environ["wsgi.input"].read(min(length, MAX_BODY))

    # -- PMC's API -------------------------------------------------------------------

    def _api(self, environ, path: str, method: str) -> tuple[str, str, bytes]:
        if environ.get("HTTP_AUTHORIZATION", "") != f"Bearer {self.token}":
            with self._lock:
                self.calls["refused"] += 1
            return _answer("401 Unauthorized", {"code": "401", "message": "token invalido"})
        if self.fail_status:
            return _answer(f"{self.fail_status} Simulated", {
                "code": str(self.fail_status), "message": "falla simulada"})
        try:
            if path.startswith("/echo/") and method == "GET":
                answer = self._counted("echo", lambda: _answer(
                    "200 OK", {"message": path[len("/echo/"):]}))
            elif path == "/add_invoice" and method == "POST":
                answer = self._with_body(environ, "AddInvoice", self._add)
            elif path == "/remove_invoice" and method == "POST":
                answer = self._with_body(environ, "RemoveInvoice", self._remove)
            else:
                answer = _answer("404 Not Found", {"code": "404", "message": "no such call"})
        finally:
            if self.latency_ms:
                time.sleep(self.latency_ms / 1000)
        return answer

    def _counted(self, call: str, then):
        with self._lock:
            self.calls[call] += 1
            return then()

    def _with_body(self, environ, schema: str, then) -> tuple[str, str, bytes]:
        try:
            body = json.loads(self._body(environ), parse_float=Decimal)
        except ValueError:
            return _answer("400 Bad Request", {"code": "400", "message": "JSON invalido"})
        problem = contract.problem(schema, body, contract.COLLECTION)
        if problem:
            return _answer("400 Bad Request", {"code": "400", "message": problem})
        return self._counted("add_invoice" if schema == "AddInvoice" else "remove_invoice",
                             lambda: then(body))

    def _entry(self, body: dict) -> dict | None:
        return (self.invoices.get(body["company_id"], {}).get(body["customer_id"], {})
                .get(body["invoice_id"]))

    def _add(self, body: dict) -> tuple[str, str, bytes]:
        entry = self._entry(body)
        if entry is None:
            entry = (self.invoices.setdefault(body["company_id"], {})
                     .setdefault(body["customer_id"], {})
                     .setdefault(body["invoice_id"], {"adds": 0, "removes": 0}))
        entry.update(invoice=body, present=True, adds=entry["adds"] + 1)
        self._save()
        return _answer("200 OK", {"code": "00", "message": "Factura registrada"})

    def _remove(self, body: dict) -> tuple[str, str, bytes]:
        entry = self._entry(body)
        if entry is None or not entry["present"]:
            return _answer("404 Not Found", {"code": "404", "message": "Factura inexistente"})
        entry.update(present=False, removes=entry["removes"] + 1)
        self._save()
        return _answer("200 OK", {"code": "00", "message": "Factura dada de baja"})

    # -- the simulator's own -----------------------------------------------------------

    def state(self) -> dict:
        with self._lock:
            return json.loads(dumps({"invoices": self.invoices, "calls": self.calls}),
                              parse_float=Decimal)

    def _notify(self, ask: dict) -> tuple[str, str, bytes]:
        """Pay an invoice this PMC has: the adapter's payment_notify, and its answer."""
        with self._lock:
            entry = self._entry(ask)
            invoice = None if entry is None or not entry["present"] else entry["invoice"]
        if invoice is None:
            return _answer("404 Not Found", {"code": "404", "message": "no such invoice here"})
        first = invoice["due_dates"][0]
        notice = {"access_token": ask["access_token"], "company_id": invoice["company_id"],
                  "customer_id": invoice["customer_id"], "invoice_id": invoice["invoice_id"],
                  "currency": invoice["currency"], "due_date": first["due_date"],
                  "amount": f"{Decimal(str(ask.get('amount', first['amount']))):.2f}",
                  "operation_id": ask.get("operation_id") or secrets.token_hex(8),
                  "description": invoice["invoice_description"][:100]}
        try:
            sent = requests.post(ask["adapter_url"].rstrip("/") + "/api/v1/payment_notify",
                                 data=dumps(notice), timeout=30,
                                 headers={"Content-Type": JSON})
        except requests.RequestException as error:
            return _answer("502 Bad Gateway", {"code": "502", "message": str(error)})
        try:
            answer = sent.json()
        except ValueError:
            answer = sent.text[:500]
        return f"{sent.status_code} Adapter", JSON, json.dumps(
            {"sent": {k: v for k, v in notice.items() if k != "access_token"},
             "status": sent.status_code, "answer": answer}).encode()

    def _save(self) -> None:
        if self.state_file is None:
            return
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_bytes(dumps({"invoices": self.invoices, "calls": self.calls}))
        temporary.replace(self.state_file)


def serve(bind: str, token: str, state_file: str | None = None) -> None:
    from adapter.gunicorn_app import serve_wsgi

    # One process: the simulated PMC's store lives in memory (and --state).
    serve_wsgi(lambda: SimulatedPmc(token, Path(state_file) if state_file else None),
               bind=bind, workers=1, threads=16)
