"""Running spyne on the request the gateway admitted: the tree, never the bytes.

spyne's WSGI server would read the client's bytes and Content-Type again, its
own way (MIME parts, charsets, SOAP-encoding ``href`` references), and could
execute a document nobody checked. Here spyne gets the very element the
gateway parsed, authenticated and validated, and runs the service method
bound to its tag; its response comes back as a tree for the gateway to check.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone

from lxml import etree
from spyne import Application, Fault, MethodContext
from spyne.protocol.soap import Soap11
from spyne.server import ServerBase

from adapter.errors import AdapterError, InternalError

# spyne logs every fault a service method raises, with its traceback; the gateway
# logs each one once, with an error ID where it is the adapter's own (faults.py).
logging.getLogger("spyne.application").setLevel(logging.CRITICAL)


# The contract's FechaHoraConZona: a dateTime with an offset, seconds to 6 places.
_DATE_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
                        r"(?:\.([0-9]{1,6}))?(Z|([+-])([0-9]{2}):([0-9]{2}))")


class ContractSoap11(Soap11):
    """spyne's SOAP 1.1, reading a dateTime as XSD does.

    spyne 2.14 computes an offset as ``hours * 60 + minutes``, so ``-03:30``
    becomes -2:30 and ``-00:30`` becomes +0:30: the instant the validator judged
    and the one the service would store would differ.
    """

    def datetime_from_unicode_iso(self, cls, string):
        match = _DATE_TIME.fullmatch(string)
        if match is None:
            return super().datetime_from_unicode_iso(cls, string)
        year, month, day, hour, minute, second, fraction, zone, sign, zone_h, zone_m = \
            match.groups()
        offset = timedelta(0) if zone == "Z" else \
            (-1 if sign == "-" else 1) * timedelta(hours=int(zone_h), minutes=int(zone_m))
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                        int((fraction or "0").ljust(6, "0")), tzinfo=timezone(offset))


class CarriedError(Fault):
    """An adapter error raised in a service method, carried through spyne unchanged,
    so that every fault is built in one place (:mod:`adapter.soap.faults`)."""

    def __init__(self, error: AdapterError):
        super().__init__(faultcode=error.fault_code, faultstring="see the adapter's error")
        self.error = error


class SpyneDispatcher:
    def __init__(self, application: Application):
        self._app = application
        self._server = ServerBase(application)
        self._in = application.in_protocol
        self._out = application.out_protocol

    def __call__(self, request: etree._Element) -> MethodContext:
        """Run the operation ``request`` (a Body entry) asks for; the context holds the
        response envelope (``out_document``), or an AdapterError is raised."""
        ctx = MethodContext(self._server, MethodContext.SERVER)
        ctx.in_document = ctx.in_body_doc = request
        ctx.method_request_string = request.tag
        (ctx,) = self._in.generate_method_contexts(ctx)
        try:
            self._in.deserialize(ctx, message=self._in.REQUEST)
        except Fault as fault:
            # The contract accepted what spyne cannot read: a bug of ours, not the client's.
            raise InternalError(f"spyne could not read a contract-valid {request.tag}: "
                                f"{fault.faultstring}") from None
        self._app.process_request(ctx)
        if ctx.out_error is not None:
            if isinstance(ctx.out_error, CarriedError):
                raise ctx.out_error.error
            raise InternalError(f"spyne answered a fault: {ctx.out_error.faultstring}")
        self._out.serialize(ctx, message=self._out.RESPONSE)
        return ctx

    def to_bytes(self, ctx: MethodContext) -> bytes:
        self._out.create_out_string(ctx)
        return b"".join(ctx.out_string)
