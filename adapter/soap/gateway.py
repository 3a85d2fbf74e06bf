"""The gateway: the WSGI application in front of spyne.

A request reaches spyne only once it is known to be a well-formed, DTD-free,
reasonably sized SOAP 1.1 envelope whose body is a request of the contract,
valid against the bundled XSD, for a biller this adapter serves. Every
response spyne produces is validated against the same XSD before it leaves;
one that fails is a bug, logged and replaced by a ``Server`` fault.

Routes: ``POST /soap`` (SOAP), ``GET /soap?wsdl`` (the contract, with this
server's address), ``GET /xsd/<name>`` and ``GET /wsdl/<name>`` (the files the
WSDL imports), ``GET /health``.
"""
from __future__ import annotations

import io
import json
import logging
import posixpath
import time
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import parse_qs

import xmlschema
from lxml import etree

from adapter.config import Settings
from adapter.errors import (AdapterError, DocumentTooDeep, ForbiddenDtd, InvalidResponse,
                            MalformedXml, MustUnderstand, NotSoapEnvelope, RequestTooLarge,
                            SchemaViolation, SoapActionMismatch, UnknownBiller,
                            UnknownOperation, VersionMismatch)
from adapter.soap import contract
from adapter.soap.contract import SOAP12_ENV_NS, SOAP_ENV_NS, Operation
from adapter.soap.faults import fault_envelope
from adapter.soap.security import SECURITY_HEADER, Guard

log = logging.getLogger(__name__)

SOAP_PATH = "/soap"
XML_CONTENT_TYPE = "text/xml; charset=utf-8"
READ_CHUNK = 64 * 1024


@dataclass
class _Reply:
    status: str
    headers: list[tuple[str, str]]
    body: bytes


def _reply(status: str, body: bytes, content_type: str) -> _Reply:
    return _Reply(status, [("Content-Type", content_type),
                           ("Content-Length", str(len(body)))], body)


def _fault_reply(error: AdapterError) -> _Reply:
    # SOAP 1.1 over HTTP: a fault travels with status 500.
    return _reply("500 Internal Server Error", fault_envelope(error), XML_CONTENT_TYPE)


def _depth(element: etree._Element) -> int:
    deepest, stack = 0, [(element, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in node)
    return deepest


def _path(element: etree._Element) -> str:
    """``/InformarPago/importe``: local names, as a reader of the contract names them."""
    names = []
    while element is not None:
        names.append(etree.QName(element).localname)
        element = element.getparent()
    return "/" + "/".join(reversed(names))


def _first_error(schema: xmlschema.XMLSchema, element: etree._Element) -> str | None:
    """The first schema violation in ``element``, with its place and offending value."""
    for error in schema.iter_errors(element):
        offending = error.elem if isinstance(error.elem, etree._Element) else element
        message = f"{_path(offending)}: {error.reason}"
        value = (offending.text or "").strip()
        if value and len(offending) == 0:
            message += f" (got {value[:40]!r}{'...' if len(value) > 40 else ''})"
        return message
    return None


class Gateway:
    def __init__(self, spyne_wsgi: Callable, settings: Settings,
                 health_check: Callable[[], None], guard: Guard | None = None):
        self._spyne = spyne_wsgi
        self._settings = settings
        self._health_check = health_check
        self._schema = contract.schema()
        self._operations = contract.operations()
        self._namespace = contract.target_namespace()
        self._guard = guard or Guard({}, [])

    # -- WSGI ------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        reply = self._route(environ)
        start_response(reply.status, reply.headers)
        return [reply.body]

    def _route(self, environ: dict) -> _Reply:
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        query = {key.lower() for key in parse_qs(environ.get("QUERY_STRING", ""),
                                                 keep_blank_values=True)}
        if path == SOAP_PATH:
            if method == "POST":
                return self._soap(environ)
            if method in ("GET", "HEAD") and "wsdl" in query:
                return self._wsdl(environ)
            return _reply("405 Method Not Allowed",
                          b"POST SOAP requests here; GET ?wsdl for the contract\n", "text/plain")
        if method in ("GET", "HEAD"):
            # Java resolves the WSDL's "../xsd/..." against /soap to /../xsd/...:
            # dot segments above the root mean the root (RFC 3986, 5.2.4).
            path = posixpath.normpath(path)
            if path == "/health":
                return self._health()
            if path == f"/wsdl/{contract.WSDL_NAME}":
                return self._wsdl(environ)
            if path.startswith("/xsd/"):
                return self._xsd(path.removeprefix("/xsd/"))
        return _reply("404 Not Found", b"not found\n", "text/plain")

    # -- GET -------------------------------------------------------------------

    def _wsdl(self, environ: dict) -> _Reply:
        host = environ.get("HTTP_HOST") or (
            f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}")
        address = f"{environ.get('wsgi.url_scheme', 'http')}://{host}" \
                  f"{environ.get('SCRIPT_NAME', '')}{SOAP_PATH}"
        return _reply("200 OK", contract.wsdl_for(address), XML_CONTENT_TYPE)

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
        operation = None
        try:
            self._guard.check_address(environ.get("REMOTE_ADDR"))
            body = self._read_body(environ)
            request = self._parse(body)
            operation = self._admit(request, environ)
            reply = self._call_spyne(environ, body, operation)
        except AdapterError as error:
            log.warning("refused %s: %s %s", operation.name if operation else "request",
                        error.fault_code, error)
            return _fault_reply(error)
        log.info("%s answered in %.1f ms", operation.name, (time.perf_counter() - started) * 1e3)
        return reply

    def _read_body(self, environ: dict) -> bytes:
        limit = self._settings.max_request_bytes
        declared = environ.get("CONTENT_LENGTH") or ""
        if declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(
                f"request of {declared} bytes exceeds the limit of {limit} bytes")
        stream = environ["wsgi.input"]
        remaining = int(declared) if declared.isdigit() else limit + 1
        chunks, size = [], 0
        while remaining > 0:
            chunk = stream.read(min(READ_CHUNK, remaining))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            remaining -= len(chunk)
            if size > limit:
                raise RequestTooLarge(f"request exceeds the limit of {limit} bytes")
        return b"".join(chunks)

    def _parse(self, body: bytes) -> etree._Element:
        if not body.strip():
            raise MalformedXml("empty request: a SOAP envelope was expected")
        try:
            document = etree.parse(io.BytesIO(body), contract.secure_parser())
        except etree.XMLSyntaxError as error:
            if "depth" in str(error).lower():
                raise DocumentTooDeep(f"document nests deeper than allowed: {error}") from None
            raise MalformedXml(f"malformed XML: {error}") from None
        if document.docinfo.doctype or document.docinfo.internalDTD is not None:
            raise ForbiddenDtd("DTDs and entity declarations are not allowed in SOAP messages")
        root = document.getroot()
        depth, limit = _depth(root), self._settings.max_xml_depth
        if depth > limit:
            raise DocumentTooDeep(f"document nests {depth} levels deep; the limit is {limit}")
        return root

    def _admit(self, envelope: etree._Element, environ: dict) -> Operation:
        namespace = etree.QName(envelope).namespace
        if etree.QName(envelope).localname == "Envelope" and namespace != SOAP_ENV_NS:
            version = "SOAP 1.2" if namespace == SOAP12_ENV_NS else f"namespace {namespace!r}"
            raise VersionMismatch(f"this service speaks SOAP 1.1 ({SOAP_ENV_NS}), not {version}")
        if envelope.tag != f"{{{SOAP_ENV_NS}}}Envelope":
            raise NotSoapEnvelope(f"expected a SOAP 1.1 Envelope, got <{envelope.tag}>")

        parts = [child for child in envelope if isinstance(child.tag, str)]
        tags = [child.tag for child in parts]
        body_tag, header_tag = f"{{{SOAP_ENV_NS}}}Body", f"{{{SOAP_ENV_NS}}}Header"
        if tags not in ([body_tag], [header_tag, body_tag]):
            raise NotSoapEnvelope("an Envelope holds an optional Header, then one Body, "
                                  "and nothing else")
        header = parts[0] if len(parts) == 2 else None
        caller = self._guard.authenticate(environ, header)
        if header is not None:
            self._check_headers(header)

        entries = [child for child in parts[-1] if isinstance(child.tag, str)]
        if len(entries) != 1:
            raise NotSoapEnvelope(f"the Body must hold exactly one request, not {len(entries)}")
        request = entries[0]

        operation = self._operations.get(request.tag)
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

        problem = _first_error(self._schema, request)
        if problem is not None:
            raise SchemaViolation(f"invalid {operation.name} request: {problem}")

        biller = request.findtext(f"{{{self._namespace}}}idEmpresa")
        if not self._settings.serves(biller):
            raise UnknownBiller(f"idEmpresa {biller} is not served by this adapter")
        return operation

    def _check_headers(self, header: etree._Element) -> None:
        for block in header:
            if not isinstance(block.tag, str):
                continue
            if block.tag == SECURITY_HEADER and self._guard.authenticates:
                continue  # understood: it carried the credentials just checked
            if block.get(f"{{{SOAP_ENV_NS}}}mustUnderstand") in ("1", "true"):
                raise MustUnderstand(f"header <{block.tag}> is marked mustUnderstand "
                                     "and this service does not process it")

    # -- spyne and the response ----------------------------------------------------

    def _call_spyne(self, environ: dict, body: bytes, operation: Operation) -> _Reply:
        inner = dict(environ)
        inner["wsgi.input"] = io.BytesIO(body)
        inner["CONTENT_LENGTH"] = str(len(body))
        captured = {}

        def start_response(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers

        chunks = self._spyne(inner, start_response)
        try:
            payload = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        self._check_response(payload, operation)
        headers = [(name, value) for name, value in captured["headers"]
                   if name.lower() not in ("content-length", "content-type")]
        headers += [("Content-Type", XML_CONTENT_TYPE), ("Content-Length", str(len(payload)))]
        return _Reply(captured["status"], headers, payload)

    def _check_response(self, payload: bytes, operation: Operation) -> None:
        """Raise InvalidResponse unless ``payload`` is what the contract promises."""
        try:
            envelope = etree.fromstring(payload, contract.secure_parser())
            entries = [child for child in envelope.find(f"{{{SOAP_ENV_NS}}}Body")
                       if isinstance(child.tag, str)]
            (entry,) = entries
        except (etree.XMLSyntaxError, TypeError, ValueError) as error:
            problem = f"not a SOAP envelope with one body entry ({error})"
        else:
            if entry.tag == f"{{{SOAP_ENV_NS}}}Fault":
                detail = entry.find(f"detail/{{{self._namespace}}}falla")
                problem = ("fault without a falla detail" if detail is None
                           else _first_error(self._schema, detail))
            elif entry.tag != operation.response:
                problem = f"answered <{entry.tag}> instead of <{operation.response}>"
            else:
                problem = _first_error(self._schema, entry)
        if problem is not None:
            log.error("refusing to send an invalid %s response: %s\n%s",
                      operation.name, problem, payload[:4000].decode("utf-8", "replace"))
            raise InvalidResponse(f"the adapter produced an invalid {operation.name} "
                                  "response; it was logged and not sent")
