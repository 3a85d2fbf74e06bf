"""From request bytes to one checked tree: encoding, DTDs, caps, SOAP 1.1 structure, headers.

The body is decoded once, in the one encoding its BOM, its XML declaration and
the HTTP charset all agree on; the DTD check reads that text, and the parser
reads exactly that text too. Depth, element count and attributes (namespace
declarations included, per element and per document) are capped *while*
parsing, before any schema work, so a hostile document costs at most the caps,
and nothing is ever resolved or opened: any DTD is refused before the parser
runs.
"""
from __future__ import annotations

import codecs
import io
import re
from dataclasses import dataclass

from lxml import etree

from adapter.errors import (CharsetMismatch, DocumentTooDeep, ForbiddenDtd, MalformedXml,
                            MustUnderstand, NotSoapEnvelope, RequestTooLarge, TooManyAttributes,
                            TooManyElements, UnsupportedCharset, VersionMismatch)
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


def parse(text: str, *, max_depth: int, max_elements: int, max_attributes: int = 32,
          max_attributes_total: int = 256) -> etree._Element:
    """The document's root, parsed from ``text`` without DTDs, comments or processing
    instructions, refused as soon as it nests or counts more elements than allowed, or
    more attributes (namespace declarations included) on one element or in all."""
    if "<!DOCTYPE" in text:
        raise ForbiddenDtd("DTDs and entity declarations are not allowed in SOAP messages")
    events = etree.iterparse(
        io.BytesIO(text.encode("utf-8")), events=("start-ns", "start", "end"),
        encoding="utf-8", resolve_entities=False, no_network=True, load_dtd=False,
        huge_tree=False, remove_comments=True, remove_pis=True, collect_ids=False)
    depth = count = declared = attributes = 0
    try:
        for event, element in events:
            if event == "end":
                depth -= 1
                continue
            if event == "start-ns":  # the next element's (reported before it)
                declared += 1
                continue
            here, declared = len(element.attrib) + declared, 0
            attributes += here
            if here > max_attributes:
                raise TooManyAttributes(f"an element has more than {max_attributes} "
                                        f"attributes; the limit is {max_attributes}")
            if attributes > max_attributes_total:
                raise TooManyAttributes(f"document has more than {max_attributes_total} "
                                        f"attributes; the limit is {max_attributes_total}")
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


@dataclass(frozen=True)
class Envelope:
    root: etree._Element
    header_blocks: tuple[etree._Element, ...]  # the Header's entries addressed to this service
    request: etree._Element  # the one Body entry


def open_envelope(root: etree._Element) -> Envelope:
    """The SOAP 1.1 envelope's parts, checked: an optional Header, one Body, one entry."""
    name = etree.QName(root)
    if name.localname == "Envelope" and name.namespace != SOAP_ENV_NS:
        version = "SOAP 1.2" if name.namespace == SOAP12_ENV_NS else f"namespace {name.namespace!r}"
        raise VersionMismatch(f"this service speaks SOAP 1.1 ({SOAP_ENV_NS}), not {version}")
    if root.tag != ENVELOPE:
        raise NotSoapEnvelope(f"expected a SOAP 1.1 Envelope, got <{root.tag}>")
    parts = list(root)
    if [part.tag for part in parts] not in ([BODY], [HEADER, BODY]) \
            or (root.text or "").strip() or any((part.tail or "").strip() for part in parts):
        raise NotSoapEnvelope("an Envelope holds an optional Header, then one Body, "
                              "and nothing else")
    body = parts[-1]
    entries = list(body)
    if len(entries) != 1 or (body.text or "").strip() or (entries[0].tail or "").strip():
        raise NotSoapEnvelope(f"the Body must hold exactly one request, not {len(entries)}")
    header = parts[0] if len(parts) == 2 else None
    blocks = () if header is None else tuple(
        block for block in header if block.get(ACTOR) in (None, NEXT_ACTOR))
    return Envelope(root, blocks, entries[0])


def must_understand(block: etree._Element) -> bool:
    """The block's ``mustUnderstand``, read as the xs:boolean it is (``" 1 "`` is true)."""
    value = block.get(MUST_UNDERSTAND)
    if value is None:
        return False
    value = value.strip()
    if value not in ("0", "1", "false", "true"):
        raise NotSoapEnvelope(f"mustUnderstand of <{block.tag}> is {value[:20]!r}, "
                              "not a boolean")
    return value in ("1", "true")


def refuse_not_understood(blocks: tuple[etree._Element, ...], understood: set[str]) -> None:
    for block in blocks:
        if block.tag not in understood and must_understand(block):
            raise MustUnderstand(f"header <{block.tag}> is marked mustUnderstand "
                                 "and this service does not process it")
