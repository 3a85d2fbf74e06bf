"""SOAP by hand: envelopes built field by field, posted raw, and the answers read and
checked against the bundled XSD (as a client's, an attacker's or a generator's test needs);
and the zeep client of the ``client`` fixture."""
from __future__ import annotations

from dataclasses import dataclass

import requests
import xmlschema
from lxml import etree

from support.servers import Server

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
TNS = "urn:pmc-adapter:empresa:v1"


def contract_client(server: Server, schema: xmlschema.XMLSchema):
    """The ``client`` fixture's zeep client, for any server."""
    import zeep
    from zeep import Plugin

    class ContractCheck(Plugin):
        def egress(self, envelope, http_headers, operation, binding_options):
            schema.validate(envelope.find(f"{{{SOAP_ENV}}}Body")[0])
            return envelope, http_headers

        def ingress(self, envelope, http_headers, operation):
            entry = envelope.find(f"{{{SOAP_ENV}}}Body")[0]
            if entry.tag == f"{{{SOAP_ENV}}}Fault":
                schema.validate(entry.find(f"detail/{{{TNS}}}falla"))
            else:
                schema.validate(entry)
            return envelope, http_headers

    return zeep.Client(server.soap_url + "?wsdl", plugins=[ContractCheck()])


@dataclass
class SoapReply:
    status: int
    envelope: etree._Element

    @property
    def entry(self) -> etree._Element:
        return self.envelope.find(f"{{{SOAP_ENV}}}Body")[0]

    @property
    def is_fault(self) -> bool:
        return self.entry.tag == f"{{{SOAP_ENV}}}Fault"

    @property
    def fault_code(self) -> str:
        """``soap:Client.X`` whatever prefix the server chose for the envelope namespace."""
        prefix, _, code = self.entry.findtext("faultcode").partition(":")
        assert self.entry.nsmap[prefix] == SOAP_ENV, "faultcode must be a SOAP-ENV QName"
        return f"soap:{code}"

    @property
    def fault_string(self) -> str:
        return self.entry.findtext("faultstring")

    def field(self, name: str) -> str | None:
        return self.entry.findtext(f"{{{TNS}}}{name}")


class RawSoap:
    """Posts hand-built envelopes; checks every answer against the bundled XSD."""

    def __init__(self, url: str, schema: xmlschema.XMLSchema):
        self.url, self.schema = url, schema

    def post(self, payload: bytes | str, soap_action: str | None = None,
             content_type: str = "text/xml; charset=utf-8",
             headers: dict | None = None) -> SoapReply:
        headers = {"Content-Type": content_type, **(headers or {})}
        if soap_action is not None:
            headers["SOAPAction"] = f'"{soap_action}"'
        if isinstance(payload, str):
            payload = payload.encode()
        response = requests.post(self.url, data=payload, headers=headers, timeout=60)
        reply = SoapReply(response.status_code, etree.fromstring(response.content))
        if reply.is_fault:
            assert response.status_code == 500, "SOAP 1.1 faults travel with HTTP 500"
            self.schema.validate(reply.entry.find(f"detail/{{{TNS}}}falla"))
        else:
            assert response.status_code == 200
            self.schema.validate(reply.entry)
        return reply

    def call(self, operation: str, fields: list[tuple[str, object]]) -> SoapReply:
        return self.post(envelope(operation, fields), soap_action=operation)


def envelope(operation: str, fields: list[tuple[str, object]]) -> bytes:
    """A request envelope; a field's value may be a nested list of (name, value)."""
    def fill(parent, items):
        for name, value in items:
            child = etree.SubElement(parent, f"{{{TNS}}}{name}")
            if isinstance(value, list):
                fill(child, value)
            else:
                child.text = str(value)

    root = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV, "p": TNS})
    body = etree.SubElement(root, f"{{{SOAP_ENV}}}Body")
    fill(etree.SubElement(body, f"{{{TNS}}}{operation}"), fields)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# -- reading any answer, as an attacker's or a generator's test needs -----------------

@dataclass
class Result:
    """What the server answered, parsed as far as it parses."""

    status: int
    content_type: str
    body: bytes
    envelope: etree._Element | None = None
    entry: etree._Element | None = None
    problem: str | None = None  # why this is not a contract-shaped SOAP 1.1 answer

    @property
    def is_soap(self) -> bool:
        return self.problem is None

    @property
    def is_fault(self) -> bool:
        return self.entry is not None and self.entry.tag == f"{{{SOAP_ENV}}}Fault"

    @property
    def fault_code(self) -> str | None:
        if not self.is_fault:
            return None
        prefix, _, code = (self.entry.findtext("faultcode") or "").strip().partition(":")
        if self.entry.nsmap.get(prefix) != SOAP_ENV:
            return f"(not a SOAP-ENV QName) {prefix}:{code}"
        return f"soap:{code}"

    @property
    def fault_string(self) -> str | None:
        return self.entry.findtext("faultstring") if self.is_fault else None

    def value(self, name: str) -> str | None:
        return None if self.entry is None else self.entry.findtext(f"{{{TNS}}}{name}")

    def describe(self) -> str:
        if self.problem is not None:
            return (f"HTTP {self.status} ({self.content_type or 'no Content-Type'}), "
                    f"{self.problem}: {self.body[:300]!r}")
        if self.is_fault:
            return f"HTTP {self.status} fault {self.fault_code}: {self.fault_string!r}"
        return (f"HTTP {self.status} {etree.QName(self.entry).localname} "
                f"codigoRespuesta={self.value('codigoRespuesta')}")


def read_result(status: int, content_type: str, body: bytes, schema) -> Result:
    """Parses an answer and checks it the way conftest's RawSoap does: a fault travels
    with HTTP 500 and carries the contract's falla (codigo = the fault's sub-code); a
    normal answer travels with HTTP 200 and is valid against the XSD."""
    result = Result(status, content_type, body)
    try:
        result.envelope = etree.fromstring(body, etree.XMLParser(resolve_entities=False,
                                                                 no_network=True))
    except etree.XMLSyntaxError as error:
        result.problem = f"not XML ({error})"
        return result
    soap_body = result.envelope.find(f"{{{SOAP_ENV}}}Body")
    if result.envelope.tag != f"{{{SOAP_ENV}}}Envelope" or soap_body is None:
        result.problem = "not a SOAP 1.1 envelope"
        return result
    entries = [child for child in soap_body if isinstance(child.tag, str)]
    if len(entries) != 1:
        result.problem = f"{len(entries)} body entries"
        return result
    result.entry = entries[0]
    if result.is_fault:
        falla = result.entry.find(f"detail/{{{TNS}}}falla")
        if status != 500:
            result.problem = "a SOAP 1.1 fault must travel with HTTP 500"
        elif falla is None:
            result.problem = "fault without the contract's falla detail"
        elif not schema.is_valid(falla):
            result.problem = "falla detail invalid against the XSD"
        elif f"soap:{falla.findtext(f'{{{TNS}}}codigo')}" != result.fault_code:
            result.problem = "falla/codigo differs from faultcode"
    elif status != 200:
        result.problem = "a normal answer must travel with HTTP 200"
    elif not schema.is_valid(result.entry):
        result.problem = "response invalid against the XSD"
    return result


