"""The one place where errors become SOAP 1.1 faults.

Every fault the adapter sends has the same shape: ``faultcode`` in the SOAP
envelope namespace with a dotted sub-code (``soap:Client.SchemaViolation``),
a human ``faultstring``, and a ``detail`` carrying the contract's ``falla``
element (``codigo`` = the sub-code, ``mensaje`` = the faultstring, ``idSolicitud`` =
the request's ID, as logged), so that clients generated from the WSDL get a typed fault.

What the client did wrong is told precisely. What went wrong inside the
adapter is not: a ``Server`` fault says what kind of failure it was and gives
an error ID; the details (a driver's message, a table name) stay in the log
under that ID.
"""
from __future__ import annotations

import logging

from lxml import etree

from adapter import metrics
from adapter.errors import (AddressNotAllowed, AdapterError, NotAuthenticated, NotAuthorized,
                            ServerError)
from adapter.soap.contract import SOAP_ENV_NS, target_namespace
from adapter.soap.transport import new_request_id


def is_internal(error: AdapterError) -> bool:
    """Whether ``error`` is the adapter's failure rather than the client's."""
    return isinstance(error, ServerError) or error.fault_code.startswith("Server")


def fault_message(error: AdapterError, error_id: str | None = None) -> str:
    if not is_internal(error):
        return str(error)
    public = getattr(error, "public_message", ServerError.public_message)
    return f"{public} (error ID {error_id})" if error_id else public


def report_refusal(log: logging.Logger, error: AdapterError, what: str,
                   client: str | None, request_id: str | None) -> str | None:
    """Log and count a refusal of either channel (SOAP, PMC's API); returns its error ID.

    The adapter's own failures are logged under an error ID (the request's, when it has
    one), with their traceback; refusals in one line with the client's address and, for
    an authentication, the caller and the reason (never a secret)."""
    error_id = None
    if is_internal(error):
        error_id = request_id or new_request_id()
        log.error("error %s in %s: %s: %s", error_id, what, error.fault_code, error,
                  exc_info=error if error.__traceback__ else None)
    else:
        reason = getattr(error, "reason", None)  # an authentication's, for the log only
        log.warning("refused %s from %s: %s %s%s", what, client or "an unknown address",
                    error.fault_code, error, f" ({reason})" if reason else "")
    metrics.FAULTS.labels(error.fault_code).inc()
    if isinstance(error, (AddressNotAllowed, NotAuthenticated, NotAuthorized)):
        metrics.REFUSALS.labels(error.fault_code).inc()
    return error_id


def fault_envelope(error: AdapterError, error_id: str | None = None,
                   request_id: str | None = None) -> bytes:
    """A complete SOAP 1.1 envelope carrying ``error`` as a fault."""
    ns = target_namespace()
    message = fault_message(error, error_id)
    envelope = etree.Element(f"{{{SOAP_ENV_NS}}}Envelope", nsmap={"soap": SOAP_ENV_NS})
    body = etree.SubElement(envelope, f"{{{SOAP_ENV_NS}}}Body")
    fault = etree.SubElement(body, f"{{{SOAP_ENV_NS}}}Fault")
    etree.SubElement(fault, "faultcode").text = f"soap:{error.fault_code}"
    etree.SubElement(fault, "faultstring").text = message
    falla = etree.SubElement(etree.SubElement(fault, "detail"), f"{{{ns}}}falla",
                             nsmap={"tns": ns})
    etree.SubElement(falla, f"{{{ns}}}codigo").text = error.fault_code
    etree.SubElement(falla, f"{{{ns}}}mensaje").text = message
    if request_id is not None:
        etree.SubElement(falla, f"{{{ns}}}idSolicitud").text = request_id
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
