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
from spyne.descriptor import BODY_STYLE_BARE
from spyne.protocol.soap import Soap11
from spyne.server import ServerBase

from adapter.errors import AdapterError, InternalError
from adapter.soap import codec

# spyne logs every fault a service method raises, with its traceback; the gateway
# logs each one once, with an error ID where it is the adapter's own (faults.py).
logging.getLogger("spyne.application").setLevel(logging.CRITICAL)


# The contract's FechaHoraConZona: a dateTime with an offset, seconds to 6 places.
_DATE_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
                        r"(?:\.([0-9]{1,6}))?(Z|([+-])([0-9]{2}):([0-9]{2}))")


class ContractSoap11(Soap11):
    """spyne's SOAP 1.1, reading a dateTime as XSD does, and reading and writing the
    service's messages with codecs compiled from their models (:mod:`.codec`).

    spyne 2.14 computes an offset as ``hours * 60 + minutes``, so ``-03:30``
    becomes -2:30 and ``-00:30`` becomes +0:30: the instant the validator judged
    and the one the service would store would differ.

    When the application is set, every method's request and response model is
    compiled; what cannot be (see :class:`.codec.NotCompilable`), and every case
    spyne's own ``deserialize``/``serialize`` handle beyond a bare body of a known
    message -- a fault, headers, a wrapped body -- goes to spyne's generic code.
    """

    def __init__(self, *args, compiled: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self._compiled = compiled
        self.readers: dict[type, codec.Reader] = {}
        self.writers: dict[type, tuple[codec.Writer, str]] = {}
        self.not_compiled: dict[type, str] = {}  # model -> why
        self._fault_tag, self._envelope_tag, self._body_tag = (
            f"{{{self.ns_soap_env}}}{name}" for name in ("Fault", "Envelope", "Body"))

    def set_app(self, value):
        super().set_app(value)
        if value is None or not self._compiled:
            return
        for descriptors in value.interface.service_method_map.values():
            for descriptor in descriptors:
                if descriptor.body_style is not BODY_STYLE_BARE:
                    continue
                for message in (descriptor.in_message, descriptor.out_message):
                    self._compile(message)

    def _compile(self, message) -> None:
        try:
            self.readers[message] = codec.reader_for(self, message)
            self.writers[message] = (codec.writer_for(self, message),
                                     codec.message_tag(self, message))
        except codec.NotCompilable as reason:
            self.readers.pop(message, None)
            self.not_compiled[message] = str(reason)

    def deserialize(self, ctx, message):
        reader = None
        if message is self.REQUEST and ctx.descriptor is not None \
                and ctx.in_body_doc is not None and ctx.in_header_doc is None \
                and ctx.in_body_doc.tag != self._fault_tag:
            reader = self.readers.get(ctx.descriptor.in_message)
        if reader is None:
            return super().deserialize(ctx, message)
        self.event_manager.fire_event("before_deserialize", ctx)
        ctx.in_object = reader(ctx, ctx.in_body_doc)
        self.event_manager.fire_event("after_deserialize", ctx)

    def serialize(self, ctx, message):
        compiled = None
        if message is self.RESPONSE and ctx.out_error is None and ctx.out_header is None \
                and ctx.descriptor.body_style is BODY_STYLE_BARE:
            compiled = self.writers.get(ctx.descriptor.out_message)
        if compiled is None:
            return super().serialize(ctx, message)
        write, tag = compiled
        self.event_manager.fire_event("before_serialize", ctx)
        ctx.out_document = etree.Element(self._envelope_tag, nsmap=self.app.interface.nsmap)
        ctx.out_body_doc = etree.Element(self._body_tag)
        write(ctx.out_body_doc, ctx.out_object[0], tag)
        ctx.out_document.append(ctx.out_body_doc)
        if self.cleanup_namespaces:
            etree.cleanup_namespaces(ctx.out_document)
        self.event_manager.fire_event("after_serialize", ctx)

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
        ctx = self.read(request)
        self.run(ctx)
        self.write(ctx)
        return ctx

    def read(self, request: etree._Element) -> MethodContext:
        """The method context of ``request``, its values read by the in-protocol."""
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
        return ctx

    def run(self, ctx: MethodContext) -> None:
        """The service method, on the values read; its error raised as it was."""
        self._app.process_request(ctx)
        if ctx.out_error is not None:
            if isinstance(ctx.out_error, CarriedError):
                raise ctx.out_error.error
            raise InternalError(f"spyne answered a fault: {ctx.out_error.faultstring}")

    def write(self, ctx: MethodContext) -> None:
        """The answer's envelope (``ctx.out_document``), written by the out-protocol."""
        self._out.serialize(ctx, message=self._out.RESPONSE)

    def to_bytes(self, ctx: MethodContext) -> bytes:
        self._out.create_out_string(ctx)
        return b"".join(ctx.out_string)
