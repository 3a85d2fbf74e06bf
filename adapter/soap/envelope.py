"""From request bytes to one checked tree: encoding, DTDs, caps, SOAP 1.1 structure, headers.

The body is decoded once, in the one encoding its BOM, its XML declaration and
the HTTP charset all agree on; the DTD check reads that text, and the parser
reads exactly that text too. Depth and element count are capped *while*
parsing, so a hostile document costs at most the caps, and nothing is ever
resolved or opened: any DTD is refused before the parser runs.
"""
from __future__ import annotations

import codecs
import io
import re
from dataclasses import dataclass

from lxml import etree

from adapter.errors import (CharsetMismatch, DocumentTooDeep, ForbiddenDtd, MalformedXml,
                            MustUnderstand, NotSoapEnvelope, RequestTooLarge, TooManyElements,
                            UnsupportedCharset, VersionMismatch)
from adapter.soap.contract import SOAP12_ENV_NS, SOAP_ENV_NS
from adapter.soap.transport import CHARSETS

NEXT_ACTOR = "http://schemas.xmlsoap.org/soap/actor/next"
MUST_UNDERSTAND = f"{{{SOAP_ENV_NS}}}mustUnderstand"
ACTOR = f"{{{SOAP_ENV_NS}}}actor"
ENVELOPE, HEADER, BODY = (f"{{{SOAP_ENV_NS}}}{name}" for name in ("Envelope", "Header", "Body"))

_DECLARATION = re.compile(
    r"<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(['\"])[^'\"]*\1"
    r"(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(['\"])([^'\"]*)\2)?")
_UTF32_BOMS = (codecs.BOM_UTF32_BE, codecs.BOM_UTF32_LE)
_UTF16_BOMS = (codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE)


def decode(body: bytes, charset: str | None) -> str:
    """The document's text, from the one encoding its bytes, its declaration and the
    HTTP ``charset`` (a codec of :data:`CHARSETS`, or None) agree on."""
    if not body.strip():
        raise MalformedXml("empty request: a SOAP envelope was expected")
    if body.startswith(_UTF32_BOMS):
        raise UnsupportedCharset("the document is UTF-32: SOAP messages are UTF-8 or UTF-16")
    if body.startswith(_UTF16_BOMS):
        codec = "utf-16"
    elif body[:2] in (b"<\x00", b"\x00<"):
        raise UnsupportedCharset("the document looks like UTF-16 without a byte order mark, "
                                 "which XML requires")
    else:
        codec = "utf-8"
    if charset is not None and charset != codec:
        raise CharsetMismatch(f"the HTTP charset says {charset} but the document is {codec}")
    try:
        text = body.decode("utf-8-sig" if codec == "utf-8" else codec)
    except UnicodeDecodeError as error:
        raise MalformedXml(f"the document is not valid {codec} at byte {error.start}") from None
    declaration = _DECLARATION.match(text)
    if declaration is not None and declaration[3] is not None:
        declared = CHARSETS.get(declaration[3].lower())
        if declared is None:
            raise UnsupportedCharset(f"the document declares encoding {declaration[3][:40]!r}: "
                                     "SOAP messages are UTF-8 or UTF-16")
        if declared != codec:
            raise CharsetMismatch(f"the document declares {declared} but is {codec}")
    return text


def parse(text: str, *, max_depth: int, max_elements: int) -> etree._Element:
    """The document's root, parsed from ``text`` without DTDs, comments or processing
    instructions, refused as soon as it nests or counts more elements than allowed."""
    if "<!DOCTYPE" in text:
        raise ForbiddenDtd("DTDs and entity declarations are not allowed in SOAP messages")
    events = etree.iterparse(
        io.BytesIO(text.encode("utf-8")), events=("start", "end"), encoding="utf-8",
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
        remove_comments=True, remove_pis=True, collect_ids=False)
    depth = count = 0
    try:
        for event, _element in events:
            if event == "end":
                depth -= 1
                continue
            depth += 1
            count += 1
            if depth > max_depth:
                raise DocumentTooDeep(f"document nests more than {max_depth} levels deep; "
                                      f"the limit is {max_depth}")
            if count > max_elements:
                raise TooManyElements(f"document has more than {max_elements} elements; "
                                      f"the limit is {max_elements}")
    except etree.XMLSyntaxError as error:
        raise _refusal(error, max_depth) from None
    return events.root


_LIBXML2_ADVICE = re.compile(r",?[ \t]*(?:use|try)[ \t]+XML_PARSE_HUGE(?:[ \t]+option)?",
                             re.IGNORECASE)


def _refusal(error: etree.XMLSyntaxError, max_depth: int) -> Exception:
    """What to tell the client of a document libxml2 refused.

    libxml2 may stop at its own depth limit before iterparse yields the element that
    trips ours (libxml2 2.14 does, within the first chunk it reads): that document is
    too deep all the same, and is refused as such, with our limit. libxml2's other
    resource limits (a text or attribute value over 10,000,000 characters: only
    reachable where max_request_bytes allows it) are a request too large. Advice meant
    for the programmer calling libxml2 ("use XML_PARSE_HUGE option") never reaches a
    client, who controls no parser option; the message is one line.
    """
    message = " ".join(_LIBXML2_ADVICE.sub("", error.msg or str(error)).split())
    if message.startswith("Excessive depth in document"):
        return DocumentTooDeep(f"document nests more than {max_depth} levels deep; "
                               f"the limit is {max_depth}")
    if message.startswith("Resource limit exceeded"):
        return RequestTooLarge(f"the document exceeds the XML parser's limits: {message}")
    return MalformedXml(f"malformed XML: {message}")
