"""The gateway: the WSGI application in front of spyne.

A request is read, parsed and checked once, in small named steps -- transport
(:mod:`.transport`), document and envelope (:mod:`.envelope`), caller
(:mod:`.security`), contract (:mod:`.validation`) -- and the tree that passed
them is what spyne runs (:mod:`.dispatch`): never the client's bytes or
headers again. Every response is validated against the same XSD before it
leaves; one that fails is a bug, logged and replaced by a ``Server`` fault.

Routes: ``POST /soap`` (SOAP), ``GET /soap?wsdl`` (the contract, with this
server's address), ``GET /soap?xsd=<name>`` (the schemas it imports, by the
absolute URLs the served WSDL gives), ``GET /xsd/<name>`` and
``GET /wsdl/<name>`` (the bundled files, for relative imports), ``GET /health``,
``GET /metrics`` (Prometheus). Every route honours the address allow-list;
``public_wsdl`` opens the contract's routes to anyone, ``metrics_networks`` gives
``/metrics`` a list of its own.
"""
from __future__ import annotations

import json
import logging
import posixpath
import time
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import parse_qs

from lxml import etree

from adapter import metrics
from adapter.logs import recorded
from adapter.config import Settings
from adapter.errors import (AdapterError, InternalError, InvalidResponse, SoapActionMismatch,
                            SchemaViolation, UnknownBiller, UnknownOperation)
from adapter.soap import contract, envelope, transport
from adapter.soap.contract import SOAP_ENV_NS, Operation
from adapter.soap.dispatch import SpyneDispatcher
from adapter.soap.faults import fault_envelope, report_refusal
from adapter.soap.security import SECURITY_HEADER, Guard
from adapter.soap.validation import ContractValidator, contract_validator
from adapter.vocabulary import NETWORK_NAMES

log = logging.getLogger(__name__)

SOAP_PATH = "/soap"
XML_CONTENT_TYPE = "text/xml; charset=utf-8"


@dataclass
class _Reply:
    status: str
    headers: list[tuple[str, str]]
    body: bytes


def _reply(status: str, body: bytes, content_type: str) -> _Reply:
    return _Reply(status, [("Content-Type", content_type),
                           ("Content-Length", str(len(body)))], body)


def _not_soap_method() -> _Reply:
    return _reply("405 Method Not Allowed",
                  b"POST SOAP requests here; GET ?wsdl for the contract\n", "text/plain")


def _fault_reply(error: AdapterError, operation: Operation | None = None,
                 client: str | None = None, request_id: str | None = None) -> _Reply:
    """The fault for ``error``, carrying the request's ID, logged and counted
    (:func:`report_refusal`)."""
    error_id = report_refusal(log, error, operation.name if operation else "request", client,
                              request_id)
    # SOAP 1.1 over HTTP: a fault travels with status 500.
    reply = _reply("500 Internal Server Error", fault_envelope(error, error_id, request_id),
                   XML_CONTENT_TYPE)
    if request_id is not None:
        reply.headers.append(("X-Request-ID", request_id))
    return reply


class Gateway:
    def __init__(self, dispatcher: SpyneDispatcher, settings: Settings,
                 health_check: Callable[[], None], guard: Guard | None = None,
                 validator: ContractValidator | None = None,
                 outbox: Callable[[], list] = lambda: [],
                 fac_counts: Callable[[], list] | None = None):
        self._dispatch = dispatcher
        self._settings = settings
        self._health_check = health_check
        self._validator = validator or contract_validator(settings.validation)
        self._operations = contract.operations()
        self._namespace = contract.target_namespace()
        self._guard = guard or Guard({}, [])
        self._trusted_proxies = transport.networks(settings.trusted_proxies)
        self._metrics_networks = transport.networks(settings.metrics_networks)
        self._outbox = outbox  # the outbox's state, for /metrics
        self._fac_counts = fac_counts  # the billing base records sent, for /metrics

    # -- WSGI ------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        try:
            reply = self._route(environ)
        except Exception as error:  # a bug: still an answer in the shape clients expect
            reply = _fault_reply(InternalError(f"unexpected {error.__class__.__name__}: "
                                               f"{error}").with_traceback(error.__traceback__))
        start_response(reply.status, reply.headers)
        return [reply.body]

    def _route(self, environ: dict) -> _Reply:
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        query = {key.lower(): values[0] for key, values in parse_qs(
            environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        if path == SOAP_PATH and method == "POST":
            return self._soap(environ)
        if method not in ("GET", "HEAD"):
            if path == SOAP_PATH:
                return _not_soap_method()
            return _reply("404 Not Found", b"not found\n", "text/plain")
        # Java resolves the WSDL's "../xsd/..." against /soap to /../xsd/...:
        # dot segments above the root mean the root (RFC 3986, 5.2.4).
        path = posixpath.normpath(path)
        contract_route = (path == SOAP_PATH and ("wsdl" in query or "xsd" in query)) or \
            path == f"/wsdl/{contract.WSDL_NAME}" or path.startswith("/xsd/")
        if path == "/metrics" and self._metrics_networks:
            if not transport.address_in(environ.get("REMOTE_ADDR"), self._metrics_networks):
                log.warning("refused GET /metrics from %s: not in metrics_networks",
                            environ.get("REMOTE_ADDR"))
                return _reply("403 Forbidden", b"address not allowed\n", "text/plain")
        elif not (contract_route and self._settings.public_wsdl):
            try:
                self._guard.check_address(environ.get("REMOTE_ADDR"))
            except AdapterError as error:
                log.warning("refused GET %s: %s", path, error)
                return _reply("403 Forbidden", b"address not allowed\n", "text/plain")
        if path == "/metrics":
            return _reply("200 OK", metrics.exposition(self._outbox, self._fac_counts), metrics.CONTENT_TYPE)
        if path == "/health":
            return self._health()
        if path == SOAP_PATH:
            if "wsdl" in query:
                return self._wsdl(environ)
            if "xsd" in query:  # what the served WSDL imports, as Apache CXF names it
                return self._xsd(query["xsd"])
            return _not_soap_method()
        if path == f"/wsdl/{contract.WSDL_NAME}":
            return self._wsdl(environ)
        if path.startswith("/xsd/"):
            return self._xsd(path.removeprefix("/xsd/"))
        return _reply("404 Not Found", b"not found\n", "text/plain")

    # -- GET -------------------------------------------------------------------

    def _wsdl(self, environ: dict) -> _Reply:
        """The WSDL, its endpoint (and the schemas' addresses) ``public_url`` when set;
        otherwise the address the request names, marked as varying with the headers that
        named it, so that no cache in between serves one client's address to another."""
        if self._settings.public_url:
            return _reply("200 OK", contract.wsdl_for(self._settings.public_url),
                          XML_CONTENT_TYPE)
        address = transport.public_address(environ, self._trusted_proxies) + \
            f"{environ.get('SCRIPT_NAME', '')}{SOAP_PATH}"
        reply = _reply("200 OK", contract.wsdl_for(address), XML_CONTENT_TYPE)
        reply.headers.append(("Vary", "Host, X-Forwarded-Host, X-Forwarded-Proto"
                              if self._trusted_proxies else "Host"))
        return reply

    def _xsd(self, name: str) -> _Reply:
        # Only the files the contract bundles; never a path from the request.
        files = {path.name: path for path in contract.xsd_dir().glob("*.xsd")}
        if name not in files:
            return _reply("404 Not Found", b"not found\n", "text/plain")
        return _reply("200 OK", files[name].read_bytes(), XML_CONTENT_TYPE)

    def _health(self) -> _Reply:
        try:
            self._health_check()
        except Exception as error:  # any failure means "not ready"
            log.warning("health check failed: %s", error)  # details stay in the log
            body = {"status": "unavailable", "database": "unreachable"}
            return _reply("503 Service Unavailable", json.dumps(body).encode(), "application/json")
        return _reply("200 OK", json.dumps({"status": "ok", "database": "ok"}).encode(),
                      "application/json")

    # -- POST /soap --------------------------------------------------------------

    def _soap(self, environ: dict) -> _Reply:
        started = time.perf_counter()
        request_id = transport.new_request_id()
        operation = request = None
        try:
            self._guard.check_address(environ.get("REMOTE_ADDR"))
            content_type = transport.content_type(environ.get("CONTENT_TYPE"))
            body = transport.read_body(environ, self._settings.max_request_bytes)
            root = envelope.parse(envelope.decode(body, content_type.charset),
                                  max_depth=self._settings.max_xml_depth,
                                  max_elements=self._settings.max_xml_elements,
                                  max_attributes=self._settings.max_xml_attributes,
                                  max_attributes_total=self._settings.max_xml_attributes_total)
            message = envelope.open_envelope(root)
            # named for the log and the metrics even if refused (None: no such operation)
            operation = self._operations.get(message.request.tag)
            admitted = self._admit(message, operation, environ)
            request = admitted  # for the log line: only once it passed every check
            ctx = self._dispatch(admitted)
            self._check_response(ctx.out_document, operation)
            payload = self._dispatch.to_bytes(ctx)
        except AdapterError as error:
            name = operation.name if operation else "unknown"
            elapsed = time.perf_counter() - started
            metrics.REQUESTS.labels(name, "fault").inc()
            metrics.LATENCY.labels(name).observe(elapsed)
            self._log_request(request_id, name, request, None, f"fault {error.fault_code}",
                              elapsed, environ)
            return _fault_reply(error, operation, environ.get("REMOTE_ADDR"), request_id)
        elapsed = time.perf_counter() - started
        code = ctx.out_document.findtext(f".//{{{self._namespace}}}codigoRespuesta")
        metrics.REQUESTS.labels(operation.name, code if code is not None else "ok").inc()
        metrics.LATENCY.labels(operation.name).observe(elapsed)
        self._log_request(request_id, operation.name, request, ctx.out_document,
                          code if code is not None else "ok", elapsed, environ)
        reply = _reply("200 OK", payload, XML_CONTENT_TYPE)
        reply.headers.append(("X-Request-ID", request_id))
        return reply

    def _log_request(self, request_id: str, operation: str, request, response,
                     outcome: str, elapsed: float, environ: dict) -> None:
        """One line per SOAP request: who, what, the answer, how long; never a payload
        or a secret (the identifiers PMC gave, the outcome, the time)."""
        ns = self._namespace
        fields = {"request": request_id, "operation": operation,
                  NETWORK_NAMES["biller_id"]: None if request is None else
                  request.findtext(f"{{{ns}}}idEmpresa"),
                  NETWORK_NAMES["operation_id"]: None if request is None else
                  request.findtext(f"{{{ns}}}idOperacion"),
                  NETWORK_NAMES["query_id"]: None if response is None else
                  response.findtext(f".//{{{ns}}}idConsulta"),
                  "outcome": outcome, "ms": round(elapsed * 1e3, 1),
                  "client": environ.get("REMOTE_ADDR")}
        shown = {key: value for key, value in fields.items() if value is not None}
        log.info("soap " + " ".join(f"{key}={value}" for key, value in shown.items()),
                 extra={"fields": shown})
        recorded(environ)

    def _admit(self, message: envelope.Envelope, operation: Operation | None,
               environ: dict) -> etree._Element:
        """The request of ``operation`` (the one its body names; None: no such one), once
        the caller may make it and the contract accepts it; in the form the XSD defines
        for its values."""
        envelope.refuse_not_understood(message.header_blocks, self._guard.understood_headers)
        caller = self._guard.authenticate(
            environ, [block for block in message.header_blocks if block.tag == SECURITY_HEADER])

        request = message.request
        if operation is None:
            names = ", ".join(op.name for op in self._operations.values())
            raise UnknownOperation(f"no operation takes <{request.tag}>; "
                                   f"the operations in {{{self._namespace}}} are {names}")
        self._guard.authorize(caller, operation.name)

        action = environ.get("HTTP_SOAPACTION", "").strip().strip('"')
        if action and action != operation.soap_action:
            raise SoapActionMismatch(f"SOAPAction {action!r} does not match the body's "
                                     f"operation {operation.name} "
                                     f"(SOAPAction {operation.soap_action!r})")

        self._validator.collapse(request)
        problem = self._validator.first_error(request)
        if problem is not None:
            raise SchemaViolation(f"invalid {operation.name} request: {problem}")
        self._validator.canonicalise(request)

        biller = request.findtext(f"{{{self._namespace}}}idEmpresa")
        if biller is None:  # valid without one: an operation that acts for no biller (Eco)
            return request
        if not self._settings.serves(biller):
            raise UnknownBiller(f"idEmpresa {biller} is not served by this adapter")
        self._guard.authorize_biller(caller, biller)
        return request

    # -- the response ----------------------------------------------------------------

    def _check_response(self, response: etree._Element, operation: Operation) -> None:
        """Raise InvalidResponse unless ``response`` is what the contract promises."""
        body = response.find(f"{{{SOAP_ENV_NS}}}Body")
        entries = [] if body is None else list(body)
        if len(entries) != 1:
            problem = f"not a SOAP envelope with one body entry ({len(entries)})"
        elif entries[0].tag != operation.response:
            problem = f"answered <{entries[0].tag}> instead of <{operation.response}>"
        else:
            problem = self._validator.first_error(entries[0])
        if problem is not None:  # logged with its error ID (what was refused included)
            refused = etree.tostring(response)[:4000].decode("utf-8", "replace")
            raise InvalidResponse(f"refusing to send an invalid {operation.name} response: "
                                  f"{problem}\n{refused}")
