"""PMC's JSON API over HTTP: ``/api/v1/...`` (see :mod:`adapter.api`).

One request, one pass: address, method, Content-Type, size, the JSON read once
(:mod:`.parsing`), the caller by its ``access_token``, what it may do, the body
against the contract (:mod:`.contract`), the use case, the answer against the
contract. Every refusal is JSON ``{"code", "message"}`` with the HTTP status as its
code; the adapter's own failures carry an error ID that finds the log line, and
never their text.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable

from adapter import metrics
from adapter.logs import recorded
from adapter.config import Settings
from adapter.domain.model import Outcome, utcnow
from adapter.errors import (AddressNotAllowed, AdapterError, InternalError, InvalidResponse,
                            NotAuthenticated, NotAuthorized, OperationConflict,
                            RequestTimeout, RequestTooLarge, SchemaViolation, StorageUnavailable,
                            UnknownBiller, UnsupportedCharset, UnsupportedMediaType)
from adapter.api import contract, parsing, translation
from adapter.service.billing import BillingService
from adapter.soap import transport
from adapter.soap.faults import fault_message, is_internal, report_refusal
from adapter.soap.security import Caller, Guard

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
JSON_CONTENT_TYPE = "application/json"
STATUS_TEXT = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
               404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
               409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type",
               500: "Internal Server Error", 503: "Service Unavailable"}
_STATUS_OF = [(RequestTooLarge, 413), (RequestTimeout, 408),
              ((UnsupportedMediaType, UnsupportedCharset), 415), (NotAuthenticated, 401), ((AddressNotAllowed, NotAuthorized), 403),
              (OperationConflict, 409), (StorageUnavailable, 503)]


def status_of(error: AdapterError) -> int:
    for kinds, status in _STATUS_OF:
        if isinstance(error, kinds):
            return status
    return 500 if is_internal(error) else 400


def _refusal_fields(error: AdapterError, error_id: str | None = None) -> dict[str, str]:
    fields = {"code": str(status_of(error)), "message": fault_message(error, error_id)}
    if error_id is not None:
        fields["error_id"] = error_id
    return fields


def refusal_body(error: AdapterError) -> bytes:
    """The JSON a client refused for ``error`` gets (the worker's answer to a request
    that did not arrive in time)."""
    return _json(status_of(error), _refusal_fields(error))[2]


@dataclass(frozen=True)
class Route:
    name: str  # PMC's name of the operation
    operation: str  # the Webservice's: what a caller's ``operations`` name
    request: str  # the contract's schema of the body
    answer: str  # ... and of the answer (200)


ROUTES = {
    f"{PREFIX}/payment_notify": Route("payment_notify", "InformarPago", "PaymentNotice",
                                      "PaymentStored"),
    f"{PREFIX}/debt_query": Route("debt_query", "ConsultarDeuda", "DebtQuery", "DebtAnswer"),
}
DOCUMENT_PATH = f"{PREFIX}/openapi.json"


def _reply(status: int, payload: bytes, *extra: tuple[str, str]) -> tuple[int, list, bytes]:
    return status, [("Content-Type", JSON_CONTENT_TYPE),
                    ("Content-Length", str(len(payload))), *extra], payload


def _json(status: int, body: dict[str, Any], *extra: tuple[str, str]) -> tuple[int, list, bytes]:
    # ASCII only: U+2028, U+0085 and the like travel escaped
    return _reply(status, json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode(),
                  *extra)


class ApiGateway:
    def __init__(self, billing: BillingService, settings: Settings, guard: Guard,
                 clock: Callable[[], datetime] = utcnow):
        self._billing = billing
        self._settings = settings
        self._guard = guard
        self._clock = clock

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        try:
            status, headers, body = self._route(environ)
        except Exception as error:  # a bug: still an answer in the contract's shape
            status, headers, body = self._refusal(
                InternalError(f"unexpected {error.__class__.__name__}: {error}")
                .with_traceback(error.__traceback__), None, environ)
        start_response(f"{status} {STATUS_TEXT[status]}", headers)
        return [body]

    def _route(self, environ: dict) -> tuple[int, list, bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        route = ROUTES.get(path)
        if path == DOCUMENT_PATH:
            if method not in ("GET", "HEAD"):
                return _json(405, {"code": "405", "message": "GET the contract"},
                             ("Allow", "GET, HEAD"))
            if not self._settings.public_wsdl:  # the contract's routes, as the WSDL's
                try:
                    self._guard.check_address(environ.get("REMOTE_ADDR"))
                except AdapterError as error:
                    return self._refusal(error, None, environ)
            return _reply(200, contract.document_bytes())
        if route is None:
            return _json(404, {"code": "404", "message": f"no operation at {path[:80]!r}; the "
                               f"contract is at {DOCUMENT_PATH}"})
        if method != "POST":
            return _json(405, {"code": "405", "message": f"POST {route.name} requests"},
                         ("Allow", "POST"))
        return self._operation(route, environ)

    # -- POST ------------------------------------------------------------------------

    def _operation(self, route: Route, environ: dict) -> tuple[int, list, bytes]:
        started = time.perf_counter()
        request_id = transport.new_request_id()
        fields: dict[str, Any] = {}
        try:
            self._guard.check_address(environ.get("REMOTE_ADDR"))
            parsing.check_content_type(environ.get("CONTENT_TYPE"))
            body = parsing.parse(transport.read_body(environ, self._settings.max_request_bytes))
            if not isinstance(body, dict):
                raise SchemaViolation("the body must be a JSON object")
            caller = self._guard.authenticate_token(body.get("access_token"), environ)
            self._guard.authorize(caller, route.operation)
            problem = contract.problem(route.request, body)
            if problem is not None:
                raise SchemaViolation(f"invalid {route.name} request: {problem}")
            biller = self._biller(caller, body)
            fields = {"company": biller, "operation_id": body.get("operation_id")}
            answer = self._answer(route, body, biller)
            problem = contract.problem(route.answer, answer)
            if problem is not None:
                raise InvalidResponse(f"refusing to send an invalid {route.name} answer: "
                                      f"{problem}")
        except AdapterError as error:
            elapsed = time.perf_counter() - started
            metrics.REQUESTS.labels(route.name, "refused").inc()
            metrics.LATENCY.labels(route.name).observe(elapsed)
            self._log(request_id, route, fields, f"refused {error.fault_code}", elapsed, environ)
            return self._refusal(error, route, environ, request_id)
        elapsed = time.perf_counter() - started
        metrics.REQUESTS.labels(route.name, answer["code"]).inc()
        metrics.LATENCY.labels(route.name).observe(elapsed)
        self._log(request_id, route, fields, answer["code"], elapsed, environ)
        return _json(200, answer, ("X-Request-ID", request_id))

    def _biller(self, caller: Caller | None, body: dict[str, Any]) -> str:
        """The biller the request acts for: ``company_id``, else the caller's one biller,
        else the adapter's one biller."""
        biller = body.get("company_id")
        if biller is None:
            candidates = caller.billers if caller is not None and caller.billers is not None \
                else self._settings.served_billers
            if len(candidates) != 1:
                raise SchemaViolation("company_id is required: "
                                      + ("the caller acts for several billers"
                                         if candidates else "this adapter serves any biller"))
            (biller,) = candidates
        if not self._settings.serves(biller):
            raise UnknownBiller(f"company_id {biller} is not served by this adapter")
        self._guard.authorize_biller(caller, biller)
        return biller

    def _answer(self, route: Route, body: dict[str, Any], biller: str) -> dict[str, Any]:
        if route.name == "payment_notify":
            notice = translation.payment_notice(body, biller, self._clock())
            answer = self._billing.record_payment(notice)
            if answer.outcome is Outcome.OPERATION_CONFLICT:
                raise OperationConflict(f"operation_id {notice.operation_id} of company "
                                        f"{biller} was received before with other data; "
                                        "nothing stored")
            return translation.payment_stored(answer.receipt_id)
        answer = self._billing.query_debt(biller, body["customer_id"], body.get("invoice_id"))
        return translation.debt_answer(answer)

    # -- answers -----------------------------------------------------------------------

    def _refusal(self, error: AdapterError, route: Route | None, environ: dict,
                 request_id: str | None = None) -> tuple[int, list, bytes]:
        error_id = report_refusal(log, error, route.name if route else "request",
                                  environ.get("REMOTE_ADDR"), request_id)
        extra = [("X-Request-ID", request_id)] if request_id else []
        return _json(status_of(error), _refusal_fields(error, error_id), *extra)

    def _log(self, request_id: str, route: Route, fields: dict[str, Any], outcome: str,
             elapsed: float, environ: dict) -> None:
        """One line per API request, as for SOAP: who, what, the answer, how long; never
        the body or the token."""
        shown = {"request": request_id, "operation": route.name, **fields,
                 "outcome": outcome, "ms": round(elapsed * 1e3, 1),
                 "client": environ.get("REMOTE_ADDR")}
        shown = {key: value for key, value in shown.items() if value is not None}
        log.info("api " + " ".join(f"{key}={value}" for key, value in shown.items()),
                 extra={"fields": shown})
        recorded(environ)
