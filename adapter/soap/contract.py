"""The published contract: the bundled ``wsdl/`` and ``xsd/`` files.

Installed, they live inside the package (``adapter/wsdl``, ``adapter/xsd``);
in a checkout, at the top of the repository. Everything the gateway knows
about operations (names, request and response elements, SOAPAction) is read
from the WSDL itself, and the XSD is compiled once per process.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import xmlschema
from lxml import etree

WSDL_NAME = "pmc-adapter.wsdl"
XSD_NAME = "pmc-adapter.xsd"

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV_NS = "http://www.w3.org/2003/05/soap-envelope"


def _contract_dir(name: str) -> Path:
    package_dir = Path(__file__).resolve().parent.parent
    for candidate in (package_dir / name, package_dir.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the bundled contract folder {name}/ is missing")


def wsdl_dir() -> Path:
    return _contract_dir("wsdl")


def xsd_dir() -> Path:
    return _contract_dir("xsd")


def wsdl_path() -> Path:
    return wsdl_dir() / WSDL_NAME


def xsd_path() -> Path:
    return xsd_dir() / XSD_NAME


@dataclass(frozen=True)
class Operation:
    name: str
    soap_action: str
    request: str  # Clark notation: {namespace}localName
    response: str


@functools.cache
def schema() -> xmlschema.XMLSchema:
    """The bundled XSD, compiled once per process."""
    return xmlschema.XMLSchema(str(xsd_path()))


@functools.cache
def wsdl_document() -> etree._ElementTree:
    return etree.parse(str(wsdl_path()), secure_parser())


@functools.cache
def target_namespace() -> str:
    return wsdl_document().getroot().get("targetNamespace")


@functools.cache
def operations() -> dict[str, Operation]:
    """Operations by request element (Clark name), as the WSDL's binding declares them."""
    root = wsdl_document().getroot()
    ns = {"w": WSDL_NS, "s": WSDL_SOAP_NS}

    def resolve(qname: str) -> str:
        prefix, _, local = qname.rpartition(":")
        return f"{{{root.nsmap[prefix or None]}}}{local}"

    message_element = {
        message.get("name"): resolve(message.find("w:part", ns).get("element"))
        for message in root.iterfind("w:message", ns)}
    actions = {
        op.get("name"): op.find("s:operation", ns).get("soapAction")
        for op in root.iterfind("w:binding/w:operation", ns)}
    found = {}
    for op in root.iterfind("w:portType/w:operation", ns):
        name = op.get("name")
        request = message_element[op.find("w:input", ns).get("message").rpartition(":")[2]]
        response = message_element[op.find("w:output", ns).get("message").rpartition(":")[2]]
        found[request] = Operation(name, actions[name], request, response)
    return found


def secure_parser() -> etree.XMLParser:
    """For XML from the network: no DTD loading, no entity expansion, no network
    access, and libxml2's own size and depth limits kept (huge_tree=False)."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, collect_ids=False)


XSD_NS = "http://www.w3.org/2001/XMLSchema"


@functools.lru_cache(maxsize=32)
def wsdl_for(address: str, path: Path | None = None) -> bytes:
    """A bundled WSDL (ours by default) as served from ``address``: the endpoint set to
    it, and every schema it imports given as an absolute ``address?xsd=NAME`` URL.

    On disk the imports stay relative (``../xsd/...``), so a checkout imports as it
    is; served, they do not depend on how an importer resolves a relative URL
    against ``/soap`` (some make ``http://xsd/...`` of it).
    """
    document = etree.parse(str(path or wsdl_path()), secure_parser())
    for location in document.getroot().iterfind(f".//{{{WSDL_SOAP_NS}}}address"):
        location.set("location", address)
    for schema_import in document.getroot().iterfind(f".//{{{XSD_NS}}}import[@schemaLocation]"):
        name = schema_import.get("schemaLocation").rpartition("/")[2]
        schema_import.set("schemaLocation", f"{address}?xsd={name}")
    return etree.tostring(document, xml_declaration=True, encoding="UTF-8")
