"""PMC's collection API (``recaudaciones-api/v1``), called as the public integrations
call it: ``add_invoice``, ``remove_invoice``, ``echo/{msg}``; JSON over HTTPS, with
``Authorization: Bearer <pmc_api_token>``.

This is the one place where the domain's invoice becomes PMC's JSON: every body is
checked against ``adapter/api/pmc-collection.json`` before it is sent, and every
answer after it comes. Each call ends within ``pmc_api_timeout`` whatever PMC does (a
total deadline, :mod:`adapter.erp.deadline`).

What an answer means, for the outbox:

* 2xx with ``code`` ``"00"``: done; a ``remove_invoice`` answered 404 is done too
  (PMC does not have it: what was asked is true).
* 400, 409, 422, or 2xx with another code: PMC refused it (:class:`PmcRejected`:
  kept for a person, not retried).
* Anything else -- no connection, the deadline, 401/403 (a token being rotated is
  fixed by a person, and what waits must not be lost meanwhile), 404 on anything but
  a removal (a wrong pmc_api_url), 408, 429, 5xx, an answer outside the contract:
  :class:`PmcUnavailable`, retried with backoff.
"""
from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

import requests

from adapter.api import contract
from adapter.config import PmcApiSettings, Settings
from adapter.domain.model import Invoice
from adapter.erp.deadline import DeadlineAdapter, within
from adapter.errors import DeadlineExceeded, PmcRejected, PmcUnavailable

log = logging.getLogger(__name__)

#: A due date is a day; PMC's API wants its hour too: the day's last minute.
DUE_HOUR = "23:59"
REFUSED = frozenset({400, 409, 422})


def dumps(value: Any) -> bytes:
    """JSON where a Decimal is a number written as the decimal is (``1500.00``), never
    through a float."""
    def encode(item: Any) -> str:
        if isinstance(item, dict):
            return "{" + ",".join(f"{json.dumps(key)}:{encode(inner)}"
                                  for key, inner in item.items()) + "}"
        if isinstance(item, list):
            return "[" + ",".join(encode(inner) for inner in item) + "]"
        if isinstance(item, Decimal):
            return f"{item:f}"
        return json.dumps(item, ensure_ascii=False)
    return encode(value).encode("utf-8")


def invoice_key(invoice: Invoice) -> dict[str, str]:
    return {"company_id": invoice.biller_id, "customer_id": invoice.customer_id,
            "invoice_id": invoice.invoice_id}


def add_invoice_body(invoice: Invoice) -> dict[str, Any]:
    """The ``add_invoice`` body of an invoice: the screen text is its screen message, the
    invoice text its description."""
    return {**invoice_key(invoice),
            "screen_description": invoice.screen_message,
            "invoice_description": invoice.description,
            "currency": invoice.currency.value,
            "due_dates": [{"due_date": due.on.isoformat(), "due_date_hour": DUE_HOUR,
                           "amount": due.amount} for due in invoice.due_dates]}


class PmcApi:
    """One PMC collection API (a base URL and its token), with pooled connections."""

    def __init__(self, settings: PmcApiSettings):
        self.settings = settings
        self._session = requests.Session()
        for scheme in ("http://", "https://"):
            self._session.mount(scheme, DeadlineAdapter())
        self._session.headers.update({"Authorization": f"Bearer {settings.token}",
                                      "Accept": "application/json"})

    # -- the calls -----------------------------------------------------------------------

    def add_invoice(self, invoice: Invoice) -> str:
        """Publish (or replace) the invoice at PMC; PMC's answer, as a reference."""
        body = add_invoice_body(invoice)
        self._checked("AddInvoice", body)
        status, answer = self._call("POST", "/add_invoice", dumps(body))
        return self._outcome("add_invoice", status, answer)

    def remove_invoice(self, invoice: Invoice) -> str:
        """Withdraw the invoice from PMC (done also when PMC does not have it)."""
        body = invoice_key(invoice)
        self._checked("RemoveInvoice", body)
        status, answer = self._call("POST", "/remove_invoice", dumps(body),
                                    answered=REFUSED | {404})
        if status == 404:
            return f"not at PMC: {answer['message']}"[:64]
        return self._outcome("remove_invoice", status, answer)

    def echo(self, message: str = "PING") -> str:
        status, answer = self._call("GET", f"/echo/{message}", None, schema="Echo")
        if status != 200:
            raise PmcUnavailable(f"echo answered HTTP {status}: {answer.get('message')}")
        return answer["message"]

    # -- the wire ------------------------------------------------------------------------

    @staticmethod
    def _checked(schema: str, body: dict) -> None:
        problem = contract.problem(schema, json.loads(dumps(body), parse_float=Decimal),
                                   contract.COLLECTION)
        if problem:  # this invoice cannot be said in PMC's terms: no call would take it
            raise PmcRejected(f"not sent, outside PMC's contract: {problem}")

    def _call(self, method: str, path: str, body: bytes | None, schema: str = "Answer",
              answered: frozenset[int] = REFUSED) -> tuple[int, dict]:
        """PMC's status and answer, for a 2xx or an ``answered`` status; any other is
        PmcUnavailable."""
        url = self.settings.url + path
        timeout = self.settings.timeout
        try:
            response = within(timeout, lambda: self._session.request(
                method, url, data=body, timeout=timeout, allow_redirects=False,
                headers={"Content-Type": "application/json"} if body is not None else {}))
        except DeadlineExceeded as error:
            raise PmcUnavailable(f"{path}: {error}") from None
        except requests.RequestException as error:
            raise PmcUnavailable(f"{path}: {error.__class__.__name__}: {error}") from None
        status = response.status_code
        if status in (401, 403):
            raise PmcUnavailable(f"{path}: PMC refused our token (HTTP {status}): check "
                                 "pmc_api_token")
        if status not in answered and not 200 <= status < 300:
            raise PmcUnavailable(f"{path}: HTTP {status}")
        try:
            answer = json.loads(response.content, parse_float=Decimal)
        except ValueError:
            raise PmcUnavailable(f"{path}: HTTP {status} with an answer that is not JSON") \
                from None
        problem = contract.problem(schema, answer, contract.COLLECTION)
        if problem:
            raise PmcUnavailable(f"{path}: HTTP {status}, an answer outside PMC's contract: "
                                 f"{problem}")
        return status, answer

    @staticmethod
    def _outcome(call: str, status: int, answer: dict) -> str:
        said = f"{answer['code']} {answer['message']}"
        if 200 <= status < 300 and answer["code"] == "00":
            return said[:64]
        raise PmcRejected(f"{call} refused (HTTP {status}): {said[:300]}")


class PmcDirectory:
    """Each biller's PMC collection API, one client per distinct configuration."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._clients: dict[PmcApiSettings, PmcApi] = {}

    def for_biller(self, biller_id: str) -> PmcApi | None:
        api = self._settings.pmc_api_for(biller_id)
        if not api.configured:
            return None
        client = self._clients.get(api)
        if client is None:
            client = self._clients.setdefault(api, PmcApi(api))
        return client

    def publishes(self, biller_id: str) -> bool:
        """Whether the biller's invoices created online are sent to PMC."""
        return self._settings.pmc_api_for(biller_id).configured

    @property
    def configured(self) -> bool:
        return self._settings.pmc_api.configured or any(
            section.pmc_api.configured for section in self._settings.billers.values())
