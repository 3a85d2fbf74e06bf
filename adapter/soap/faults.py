"""The one place where errors become SOAP 1.1 faults.

Every fault the adapter sends has the same shape: ``faultcode`` in the SOAP
envelope namespace with a dotted sub-code (``soap:Client.SchemaViolation``),
a human ``faultstring``, and a ``detail`` carrying the contract's ``falla``
element (``codigo`` = the sub-code, ``mensaje`` = the faultstring), so that
clients generated from the WSDL get a typed fault.
"""
from __future__ import annotations

from lxml import etree
from spyne import Fault

from adapter.errors import AdapterError
from adapter.soap.contract import SOAP_ENV_NS, target_namespace


def fault_detail(error: AdapterError) -> etree._Element:
    ns = target_namespace()
    falla = etree.Element(f"{{{ns}}}falla", nsmap={"tns": ns})
    etree.SubElement(falla, f"{{{ns}}}codigo").text = error.fault_code
    etree.SubElement(falla, f"{{{ns}}}mensaje").text = str(error)
    return falla


def fault_envelope(error: AdapterError) -> bytes:
    """A complete SOAP 1.1 envelope carrying ``error`` as a fault."""
    envelope = etree.Element(f"{{{SOAP_ENV_NS}}}Envelope", nsmap={"soap": SOAP_ENV_NS})
    body = etree.SubElement(envelope, f"{{{SOAP_ENV_NS}}}Body")
    fault = etree.SubElement(body, f"{{{SOAP_ENV_NS}}}Fault")
    etree.SubElement(fault, "faultcode").text = f"soap:{error.fault_code}"
    etree.SubElement(fault, "faultstring").text = str(error)
    etree.SubElement(fault, "detail").append(fault_detail(error))
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def as_spyne_fault(error: AdapterError) -> Fault:
    """The same fault, for errors raised inside a spyne service method."""
    return Fault(faultcode=error.fault_code, faultstring=str(error), detail=fault_detail(error))
