"""Issue 7: what runs is what was checked.

The gateway once validated one document and let spyne execute another: it
handed spyne the client's own bytes and Content-Type, and spyne re-read them
its own way (the first MIME part of a ``multipart/related`` body, the
document decoded with the header's ``charset`` -- UTF-7, ``unicode_escape``,
HZ... --, hrefs resolved across the envelope). Schema, biller list, caller
permissions and SOAPAction were all checked against the decoy.

Every case here sends a *decoy* the gateway would accept (a ConsultarDeuda of
biller 1234 for a fresh client) carrying a *hidden* operation (an InformarPago
or AltaFactura for the unserved biller 9999 -- on SQLite also with a
30-character idCliente and a 150-character descripcion, which PostgreSQL's
columns could not even store: nothing the contract allows). A case ends in a
``soap:Client...`` fault that wrote nothing, or in the decoy's own normal
answer -- and the hidden operation never leaves a trace in the database.
Cases whose answer the contract fixes also check the fault code.
"""
from __future__ import annotations

import base64
import codecs
import encodings.aliases
import socket
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from adapter.domain.model import Currency, DueDate, Invoice, Origin
from adapter.storage.orm import InvoiceRow
from support.data import today, unique
from support.servers import start_server, stop_server
from support.soap import SOAP_ENV, TNS, Result, read_result

SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
RESPONSE = {"ConsultarDeuda": f"{{{TNS}}}ConsultarDeudaResponse",
            "InformarPago": f"{{{TNS}}}InformarPagoResponse",
            "AltaFactura": f"{{{TNS}}}AltaFacturaResponse"}


# -- shared helpers: one exchange, described whatever came back ------------------------

def post(url: str, schema, body: bytes, content_type: str | None = "text/xml; charset=utf-8",
         headers: dict | None = None, action: str | None = None,
         timeout: float = 30) -> Result:
    """POSTs ``body`` as is: no Content-Type at all when ``content_type`` is None."""
    sent = dict(headers or {})
    if content_type is not None:
        sent["Content-Type"] = content_type
    if action is not None:
        sent["SOAPAction"] = f'"{action}"'
    response = requests.post(url, data=body, headers=sent, timeout=timeout)
    return read_result(response.status_code, response.headers.get("Content-Type", ""),
                       response.content, schema)


# -- the decoy and the hidden operations ---------------------------------------------------

def wrap(body: str, header: str | None = None, prolog: str = "", epilog: str = "") -> str:
    """An envelope around ``body``: ``soap`` = SOAP 1.1, ``p`` = the contract."""
    head = "" if header is None else f"<soap:Header>{header}</soap:Header>"
    return (f'{prolog}<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:p="{TNS}">{head}'
            f"<soap:Body>{body}</soap:Body></soap:Envelope>{epilog}")


def query_entry(customer: str, biller: str = "1234") -> str:
    return (f"<p:ConsultarDeuda><p:idEmpresa>{biller}</p:idEmpresa>"
            f"<p:idCliente>{customer}</p:idCliente></p:ConsultarDeuda>")


@dataclass
class Hidden:
    """An operation slipped inside a decoy: contract-invalid, so only smuggling runs it."""

    operation: str  # InformarPago or AltaFactura
    biller: str = "9999"
    # 30-character idCliente, 150-character descripcion: SQLite stores them, so a hidden
    # operation that runs leaves its rows; PostgreSQL's VARCHARs would refuse them and
    # turn the same defect into a Server fault, so there the values fit the columns and
    # only the unserved biller makes the operation one the contract refuses.
    long_values: bool = True
    operation_id: str = field(default_factory=lambda: unique("SMUG-OP-"))
    customer: str = ""
    invoice: str = field(default_factory=lambda: unique("SF"))

    def __post_init__(self):
        if not self.customer:
            self.customer = unique("SMUG").ljust(30 if self.long_values else 19, "Z")

    def entry(self) -> str:
        if self.operation == "InformarPago":
            return (f"<p:InformarPago><p:idEmpresa>{self.biller}</p:idEmpresa>"
                    f"<p:idOperacion>{self.operation_id}</p:idOperacion>"
                    f"<p:idCliente>{self.customer}</p:idCliente>"
                    f"<p:idFactura>{self.invoice}</p:idFactura><p:importe>10.00</p:importe>"
                    f"<p:moneda>ARS</p:moneda>"
                    f"<p:fechaPago>{today()}T12:00:00-03:00</p:fechaPago></p:InformarPago>")
        due = today() + timedelta(days=30)
        return (f"<p:AltaFactura><p:idEmpresa>{self.biller}</p:idEmpresa>"
                f"<p:idCliente>{self.customer}</p:idCliente>"
                f"<p:idFactura>{self.invoice}</p:idFactura><p:moneda>ARS</p:moneda>"
                f"<p:vencimientos><p:vencimiento><p:fecha>{due}</p:fecha>"
                f"<p:importe>10.00</p:importe></p:vencimiento></p:vencimientos>"
                f"<p:descripcion>{'D' * (150 if self.long_values else 100)}"
                "</p:descripcion></p:AltaFactura>")

    def envelope(self) -> str:
        return wrap(self.entry())

    def fields(self) -> str:
        """Its values without their operation element (for multi-ref tricks)."""
        entry = self.entry()
        return entry[entry.index(">") + 1:entry.rindex("</")]

    def traces(self, db) -> dict[str, int]:
        """Rows the hidden operation would have written; all zero when it never ran."""
        found = {
            "payments with its idOperacion": db.count("payments",
                                                      operation_id=self.operation_id),
            "payments for its client": db.count("payments", customer_id=self.customer),
            "invoices for its client": db.count("invoices", customer_id=self.customer),
            "invoices with its idFactura": db.count("invoices", invoice_id=self.invoice),
            "debt queries for its client": db.count("debt_queries", customer_id=self.customer),
        }
        return {what: count for what, count in found.items() if count}


def hidden_for(operation: str, db) -> Hidden:
    return Hidden(operation, long_values=db.url.startswith("sqlite"))


# -- what a case must end in ------------------------------------------------------------------

@dataclass(frozen=True)
class Expect:
    decoy_ok: bool  # the decoy's normal answer is acceptable
    fault_ok: bool  # a soap:Client fault is acceptable
    codes: frozenset[str] = frozenset()  # when set: the only acceptable fault codes

    def __str__(self):
        if self.codes:
            return " or ".join(sorted(self.codes))
        return {(True, True): "the decoy's answer or a Client fault",
                (True, False): "the decoy's normal answer",
                (False, True): "a Client fault"}[(self.decoy_ok, self.fault_ok)]


DECOY = Expect(decoy_ok=True, fault_ok=False)
DECOY_OR_CLIENT = Expect(decoy_ok=True, fault_ok=True)
CLIENT_FAULT = Expect(decoy_ok=False, fault_ok=True)


# Faults that blame the client: Client.*, and the two SOAP 1.1 itself defines for
# what a client sent (MustUnderstand, VersionMismatch).
CLIENTS_FAULTS = ("soap:Client.", "soap:MustUnderstand", "soap:VersionMismatch")


def refused(*codes: str) -> Expect:
    return Expect(decoy_ok=False, fault_ok=True,
                  codes=frozenset(f"soap:Client.{code}" for code in codes))


@dataclass
class Attempt:
    body: bytes
    content_type: str | None = "text/xml; charset=utf-8"
    expect: Expect = DECOY_OR_CLIENT


def check_outcome(result: Result, expect: Expect, db, before: dict, hidden: Hidden | None,
                  decoy_customer: str | None, decoy_operation: str = "ConsultarDeuda") -> None:
    # 1. the defect itself: the hidden operation ran
    if hidden is not None:
        traces = hidden.traces(db)
        assert not traces, (f"the hidden {hidden.operation} ran ({traces}); "
                            f"the server answered {result.describe()}")
    # 2. the answer is a SOAP 1.1 answer of the contract's shape
    hint = ""
    if hidden is not None and result.is_fault and "Server" in (result.fault_code or ""):
        hint = (" -- a Server fault here usually means spyne ran the hidden "
                f"{hidden.operation} and failed on its values")
    assert result.is_soap, f"expected {expect}; got {result.describe()}{hint}"
    if result.is_fault:
        assert (result.fault_code or "").startswith(CLIENTS_FAULTS), (
            f"expected {expect}; got a fault that is not the client's: "
            f"{result.describe()}{hint}")
        assert expect.fault_ok, (f"expected {expect}: this request is acceptable, "
                                 f"but was refused: {result.describe()}")
        if expect.codes:
            assert result.fault_code in expect.codes, (
                f"expected {expect}; got {result.describe()}")
        assert db.counts() == before, "a refused request wrote to the database"
        return
    assert expect.decoy_ok, f"expected {expect}; got {result.describe()}"
    assert result.entry.tag == RESPONSE[decoy_operation], (
        f"expected the decoy's {decoy_operation} answer; got {result.describe()}")
    after = db.counts()
    assert (after["invoices"], after["payments"]) == (before["invoices"], before["payments"]), (
        f"a {decoy_operation} wrote invoices or payments: {before} -> {after}")
    if decoy_operation == "ConsultarDeuda" and decoy_customer is not None:
        assert after["debt_queries"] == before["debt_queries"] + 1, (
            f"one debt query was expected: {before} -> {after}")
        assert db.count("debt_queries", customer_id=decoy_customer) == 1, (
            "the debt query stored is not the decoy's")


# -- MIME: multipart bodies whose first part spyne would run --------------------------------

def mime(*parts: tuple[str, str | None], boundary: str = "XYZ") -> str:
    """A multipart body: each part is (XML payload, Content-ID or None)."""
    text = ""
    for payload, content_id in parts:
        cid = f"Content-ID: {content_id}\r\n" if content_id else ""
        text += (f"\r\n--{boundary}\r\nContent-Type: text/xml; charset=utf-8\r\n"
                 f"Content-Transfer-Encoding: 8bit\r\n{cid}\r\n{payload}\r\n")
    return text + f"--{boundary}--\r\n"


def mime_attempts(hidden: Hidden, customer: str) -> dict[str, Attempt]:
    decoy = query_entry(customer)
    hidden_first = mime((hidden.envelope(), None))
    cases = {}
    # A MIME boundary line starts with "--", which no XML comment may contain: a
    # multipart part can hide in CDATA or a processing instruction, not in a comment.
    bodies = {
        "in CDATA in the Body": wrap(f"<![CDATA[{hidden_first}]]>{decoy}"),
        "in CDATA after the decoy": wrap(f"{decoy}<![CDATA[{hidden_first}]]>"),
        "in CDATA in a Header block": wrap(
            decoy, header=f'<x:note xmlns:x="urn:x"><![CDATA[{hidden_first}]]></x:note>'),
        "in a PI after the Envelope": wrap(decoy, epilog=f"<?note {hidden_first}?>"),
        "in a PI inside the Body": wrap(f"<?note {hidden_first}?>{decoy}"),
    }
    for where, body in bodies.items():
        cases[f"multipart/related, hidden part first, {where}"] = Attempt(
            body.encode(), "multipart/related; boundary=XYZ",
            refused("UnsupportedMediaType"))
        cases[f"multipart/form-data, hidden part first, {where}"] = Attempt(
            body.encode(), "multipart/form-data; boundary=XYZ",
            refused("UnsupportedMediaType"))
    cdata = wrap(f"<![CDATA[{hidden_first}]]>{decoy}").encode()
    started = wrap(f"<![CDATA[{mime((wrap(decoy), '<decoy@x>'), (hidden.envelope(), '<h@x>'))}]]>"
                   f"{decoy}").encode()
    cases.update({
        "multipart/related with start= naming the hidden second part": Attempt(
            started, 'multipart/related; type="text/xml"; start="<h@x>"; boundary=XYZ',
            refused("UnsupportedMediaType")),
        "multipart/related with type= and start-info=": Attempt(
            cdata, 'multipart/related; type="application/xop+xml"; start-info="text/xml"; '
                   'boundary="XYZ"', refused("UnsupportedMediaType")),
        "Multipart/Related in capitals": Attempt(
            cdata, "Multipart/Related; Boundary=XYZ", refused("UnsupportedMediaType")),
        "multipart/related with a charset": Attempt(
            cdata, "multipart/related; boundary=XYZ; charset=utf-8",
            refused("UnsupportedMediaType")),
        "multipart/mixed": Attempt(cdata, "multipart/mixed; boundary=XYZ",
                                   refused("UnsupportedMediaType")),
        "text/xml, multipart/related (a list of media types)": Attempt(
            cdata, "text/xml, multipart/related; boundary=XYZ",
            refused("UnsupportedMediaType")),
        "text/xml with boundary= and type=multipart/related parameters": Attempt(
            cdata, 'text/xml; boundary=XYZ; type="multipart/related"', DECOY_OR_CLIENT),
    })
    return cases


MIME_CASES = list(mime_attempts(Hidden("InformarPago"), "C"))


def send_attempt(server, schema, db, attempts, case: str, operation: str) -> None:
    """Sends attempt ``case`` of the family ``attempts`` hiding ``operation``, and checks
    that the hidden operation never ran."""
    hidden, customer = hidden_for(operation, db), unique("D")
    attempt = attempts(hidden, customer)[case]
    before = db.counts()
    result = post(server.soap_url, schema, attempt.body, attempt.content_type)
    check_outcome(result, attempt.expect, db, before, hidden, customer)


@pytest.mark.parametrize("operation", ["InformarPago", "AltaFactura"])
@pytest.mark.parametrize("case", MIME_CASES)
def test_a_multipart_body_never_runs_its_hidden_part(server, schema, db, case, operation):
    send_attempt(server, schema, db, mime_attempts, case, operation)


OTHER_MEDIA_TYPES = ["application/soap+xml", "application/soap+xml; charset=utf-8",
                     "application/xml", "text/plain", "text/html", "application/octet-stream",
                     "text/xml-external-parsed-entity", "text/xmlx", "*/*", "xml",
                     "text/xml;", "text/ xml"]


@pytest.mark.parametrize("content_type", OTHER_MEDIA_TYPES)
def test_a_media_type_other_than_text_xml_is_refused(server, schema, db, content_type):
    customer = unique("D")
    before = db.counts()
    result = post(server.soap_url, schema, wrap(query_entry(customer)).encode(), content_type)
    expect = {"text/xml;": DECOY_OR_CLIENT, "text/ xml": CLIENT_FAULT}.get(
        content_type, refused("UnsupportedMediaType"))
    check_outcome(result, expect, db, before, None, customer)


SOAP11_CONTENT_TYPES = [None, "text/xml", "TEXT/XML", "Text/Xml; Charset=\"UTF-8\"",
                        "text/xml;charset=utf-8", "text/xml; charset=UTF-8",
                        "text/xml; foo=bar; charset=utf-8", "text/xml ; charset=utf-8"]


@pytest.mark.parametrize("content_type", SOAP11_CONTENT_TYPES)
def test_text_xml_with_or_without_parameters_and_no_content_type_are_soap_11(
        server, schema, db, content_type):
    customer = unique("D")
    before = db.counts()
    result = post(server.soap_url, schema, wrap(query_entry(customer)).encode(), content_type)
    check_outcome(result, DECOY if content_type != "text/xml ; charset=utf-8"
                  else DECOY_OR_CLIENT, db, before, None, customer)
    assert result.is_fault or result.value("codigoRespuesta") == "1"


# -- charsets: the header's charset must never decode the body into something else --------

def _smuggle_utf7(hidden: Hidden, customer: str) -> bytes:
    # UTF-7: "+ADw-" is "<" and "+AD4-" is ">"; to the gateway, Body text.
    text = hidden.entry().replace("<", "+ADw-").replace(">", "+AD4-")
    return wrap(text + query_entry(customer)).encode("ascii")


def _smuggle_unicode_escape(hidden: Hidden, customer: str) -> bytes:
    text = hidden.entry().replace("<", "\\x3c").replace(">", "\\x3e")
    return wrap(text + query_entry(customer)).encode("ascii")


def _smuggle_raw_unicode_escape(hidden: Hidden, customer: str) -> bytes:
    text = hidden.entry().replace("<", "\\u003c").replace(">", "\\u003e")
    return wrap(text + query_entry(customer)).encode("ascii")


def _smuggle_hz(hidden: Hidden, customer: str) -> bytes:
    # HZ-GB-2312: between "~{" and "~}" byte pairs are GB2312 characters. The gateway
    # sees the hidden operation inside a CDATA section; decoded as HZ, the CDATA's
    # markup turns into Chinese characters and the hidden operation into markup.
    return wrap(f"~{{<![CDATA[X~}}{hidden.entry()}~{{]]>Z~}}"
                + query_entry(customer)).encode("ascii")


SMUGGLERS = {"utf_7": _smuggle_utf7, "unicode_escape": _smuggle_unicode_escape,
             "raw_unicode_escape": _smuggle_raw_unicode_escape, "hz": _smuggle_hz}

# Labels that do name UTF-8 or UTF-16, in Python's spelling rather than IANA's: whether
# they are accepted is the adapter's choice; they must not run anything hidden.
UTF_SPELLINGS = {"utf_8", "utf8", "u8", "utf", "utf_8_sig", "utf-8-sig", "utf_16", "utf16",
                 "u16"}

# Every codec Python knows by an alias, and then some.
CODECS = sorted((set(encodings.aliases.aliases.values())
                 | {"utf_7", "unicode_escape", "raw_unicode_escape", "utf_16_le", "utf_16_be",
                    "utf_32", "utf_32_le", "utf_32_be", "cp037", "cp500", "cp875", "cp1026",
                    "cp1140", "cp273", "cp424", "punycode", "idna", "palmos", "mac_arabic",
                    "hz", "iso2022_jp", "gb18030", "big5hkscs", "johab", "utf_8_sig",
                    "rot_13", "undefined", "nonsense"})
                - UTF_SPELLINGS)
IANA_LABELS = ["UTF-7", "ISO-8859-1", "US-ASCII", "windows-1252", "UTF-16LE", "UTF-16BE",
               "UTF-32", "UTF-32LE", "EBCDIC-CP-US", "IBM037", "HZ-GB-2312", "Shift_JIS",
               "GB18030", "KOI8-R", "ISO-2022-JP", "UTF-1", "CESU-8", "SCSU", "BOCU-1",
               "UTF-EBCDIC", "x-user-defined", "", "utf-8-", "utf-8.", "utf-16x"]


def charset_payload(codec: str, hidden: Hidden, customer: str) -> bytes:
    """The most harmful bytes a ``charset=codec`` label can carry:

    * a crafted two-faced document, where the codec allows one (UTF-7, the escape
      codecs, HZ): the gateway sees a decoy, the codec decodes the hidden operation;
    * for a codec that reads ASCII differently (EBCDIC, UTF-16/32 without BOM...): the
      hidden operation encoded in it, which only a reader trusting the label can see;
    * for an ASCII-compatible codec (Latin-1, Shift_JIS...): the decoy in UTF-8 with a
      non-ASCII client ID (the codec reads another ID, or fails), the hidden operation
      in a comment;
    * for a codec that is no text encoding at all, or unknown: that same decoy."""
    name = codecs.lookup(codec).name.replace("-", "_") if _known(codec) else codec
    if name in SMUGGLERS:
        return SMUGGLERS[name](hidden, customer)
    decoy = wrap(f"<!--{hidden.entry()}-->" + query_entry(customer)).encode()
    try:
        encoded = hidden.envelope().encode(codec)
    except (LookupError, UnicodeError, TypeError):
        return decoy
    return decoy if encoded == hidden.envelope().encode("ascii") else encoded


def decoy_customer(codec: str) -> str:
    """A fresh client ID for the decoy: ASCII in a crafted (ASCII) document, else with
    characters whose UTF-8 bytes mean something else in most other codecs."""
    name = codecs.lookup(codec).name.replace("-", "_") if _known(codec) else codec
    return unique("D") if name in SMUGGLERS else unique("DÑ€")


def _known(codec: str) -> bool:
    try:
        codecs.lookup(codec)
        return True
    except LookupError:
        return False


@pytest.mark.parametrize("operation", ["InformarPago", "AltaFactura"])
@pytest.mark.parametrize("codec", CODECS)
def test_a_charset_other_than_utf8_or_utf16_is_refused_before_it_decodes_anything(
        server, schema, db, codec, operation):
    hidden, customer = hidden_for(operation, db), decoy_customer(codec)
    before = db.counts()
    result = post(server.soap_url, schema, charset_payload(codec, hidden, customer),
                  f"text/xml; charset={codec}")
    check_outcome(result, refused("UnsupportedCharset"), db, before, hidden, customer)


@pytest.mark.parametrize("label", IANA_LABELS)
def test_a_charset_is_refused_by_its_iana_name_too(server, schema, db, label):
    codec = {"UTF-7": "utf_7", "HZ-GB-2312": "hz"}.get(label, label)
    hidden, customer = hidden_for("InformarPago", db), decoy_customer(codec)
    payload = charset_payload(codec, hidden, customer)
    before = db.counts()
    result = post(server.soap_url, schema, payload, f"text/xml; charset={label}")
    expect = CLIENT_FAULT if label == "" else refused("UnsupportedCharset")
    check_outcome(result, expect, db, before, hidden, customer)


@pytest.mark.parametrize("label", sorted(UTF_SPELLINGS))
def test_python_spellings_of_utf8_and_utf16_run_nothing_hidden(server, schema, db, label):
    hidden, customer = hidden_for("InformarPago", db), unique("D")
    document = wrap(f"<!--{hidden.entry()}-->{query_entry(customer)}")
    payload = document.encode("utf-16" if "16" in label else "utf-8")
    before = db.counts()
    result = post(server.soap_url, schema, payload, f"text/xml; charset={label}")
    check_outcome(result, Expect(decoy_ok=True, fault_ok=True,
                                 codes=frozenset({"soap:Client.UnsupportedCharset"})),
                  db, before, hidden, customer)


CHARSET_HEADER_FORMS = {
    "lower case": ("text/xml; charset={}", refused("UnsupportedCharset")),
    "upper case": ("TEXT/XML; CHARSET={}", refused("UnsupportedCharset")),
    "quoted": ('text/xml; charset="{}"', refused("UnsupportedCharset")),
    "quoted, odd case": ('text/xml; Charset="{}"', refused("UnsupportedCharset")),
    "after another parameter": ("text/xml; action=x; charset={}",
                                refused("UnsupportedCharset")),
    "utf-8 first, then it": ("text/xml; charset=utf-8; charset={}", DECOY_OR_CLIENT),
    "it first, then utf-8": ("text/xml; charset={}; charset=utf-8", DECOY_OR_CLIENT),
    "utf-16 first, then it": ("text/xml; charset=utf-16; charset={}", CLIENT_FAULT),
    "comma-joined after utf-8": ("text/xml; charset=utf-8, charset={}", CLIENT_FAULT),
    "spaces around =": ("text/xml; charset = {}", CLIENT_FAULT),
    "no space after ;": ("text/xml;charset={}", refused("UnsupportedCharset")),
}
SMUGGLING_LABELS = {"utf_7": ["utf-7", "UTF-7", "utf7", "unicode-1-1-utf-7"],
                    "unicode_escape": ["unicode_escape", "unicode-escape"],
                    "raw_unicode_escape": ["raw_unicode_escape", "Raw_Unicode_Escape"],
                    "hz": ["hz", "HZ-GB-2312", "hzgb"]}


@pytest.mark.parametrize("form", CHARSET_HEADER_FORMS)
@pytest.mark.parametrize("label", [label for labels in SMUGGLING_LABELS.values()
                                   for label in labels])
def test_however_a_smuggling_charset_is_spelled_the_hidden_operation_never_runs(
        server, schema, db, label, form):
    codec = next(name for name, labels in SMUGGLING_LABELS.items() if label in labels)
    hidden, customer = hidden_for("InformarPago", db), unique("D")
    template, expect = CHARSET_HEADER_FORMS[form]
    before = db.counts()
    result = post(server.soap_url, schema, SMUGGLERS[codec](hidden, customer),
                  template.format(label))
    check_outcome(result, expect, db, before, hidden, customer)


def test_iso_8859_1_label_on_utf8_bytes_cannot_turn_a_client_id_into_another(
        server, schema, db):
    # UTF-8 "Ñ" read as ISO-8859-1 is "Ã\x91": a 19-character client ID validated by the
    # gateway would become a longer, different one in spyne.
    customer = ("Ñ" * 7) + unique("")
    before = db.counts()
    result = post(server.soap_url, schema, wrap(query_entry(customer)).encode(),
                  "text/xml; charset=iso-8859-1")
    check_outcome(result, refused("UnsupportedCharset"), db, before, None, customer)
    assert db.count("debt_queries", customer_id=customer.encode().decode("latin-1")) == 0


# -- BOMs and XML declarations ----------------------------------------------------------------

BOM8, BOM16LE, BOM16BE = codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE


def decl(encoding: str | None) -> str:
    return "" if encoding is None else f'<?xml version="1.0" encoding="{encoding}"?>'


def doc(customer: str, encoding_decl: str | None = None, extra: str = "") -> str:
    return decl(encoding_decl) + wrap(extra + query_entry(customer))


ENCODING_CASES = {
    # name: (bytes for a customer, Content-Type, expect)
    "UTF-16 BOM, charset=utf-8": (
        lambda c: doc(c).encode("utf-16"), "text/xml; charset=utf-8",
        refused("CharsetMismatch")),
    "UTF-16 BOM and declaration, charset=utf-8": (
        lambda c: doc(c, "UTF-16").encode("utf-16"), "text/xml; charset=utf-8",
        refused("CharsetMismatch")),
    "UTF-8 BOM, declaration UTF-16, no charset": (
        lambda c: BOM8 + doc(c, "UTF-16").encode(), "text/xml",
        refused("CharsetMismatch", "MalformedXml")),
    "UTF-8 BOM, declaration UTF-16, charset=utf-8": (
        lambda c: BOM8 + doc(c, "UTF-16").encode(), "text/xml; charset=utf-8",
        refused("CharsetMismatch", "MalformedXml")),
    "UTF-8 bytes, declaration UTF-16, charset=utf-8": (
        lambda c: doc(c, "UTF-16").encode(), "text/xml; charset=utf-8",
        refused("CharsetMismatch")),
    "UTF-8 bytes, declaration UTF-16, no charset": (
        lambda c: doc(c, "UTF-16").encode(), "text/xml",
        refused("CharsetMismatch", "MalformedXml")),
    "declaration utf-7, no charset": (
        lambda c: (decl("utf-7") + wrap(query_entry(c))).encode(), "text/xml",
        refused("UnsupportedCharset")),
    "declaration utf-7 over a UTF-7 smuggle, no charset": (
        lambda c: decl("utf-7").encode() + _smuggle_utf7(Hidden("InformarPago"), c),
        "text/xml", refused("UnsupportedCharset")),
    "declaration UTF-7, charset=utf-8": (
        lambda c: doc(c, "UTF-7").encode(), "text/xml; charset=utf-8",
        refused("UnsupportedCharset", "CharsetMismatch")),
    "declaration ISO-8859-1, no charset": (
        lambda c: doc(c, "ISO-8859-1").encode("latin-1"), "text/xml",
        refused("UnsupportedCharset")),
    "declaration ISO-8859-1, charset=utf-8": (
        lambda c: doc(c, "ISO-8859-1").encode("latin-1"), "text/xml; charset=utf-8",
        refused("UnsupportedCharset", "CharsetMismatch")),
    "declaration US-ASCII, no charset": (
        lambda c: doc(c, "US-ASCII").encode(), "text/xml", refused("UnsupportedCharset")),
    "declaration EBCDIC-CP-US in ASCII bytes, no charset": (
        lambda c: doc(c, "EBCDIC-CP-US").encode(), "text/xml",
        refused("UnsupportedCharset")),
    "declaration EBCDIC-CP-US in EBCDIC, no charset": (
        lambda c: doc(c, "EBCDIC-CP-US").encode("cp037"), "text/xml",
        refused("UnsupportedCharset", "MalformedXml")),
    "declaration UTF-32 in UTF-32 with BOM, no charset": (
        lambda c: doc(c, "UTF-32").encode("utf-32"), "text/xml",
        refused("UnsupportedCharset")),
    "UTF-32 with BOM, no charset": (
        lambda c: doc(c).encode("utf-32"), "text/xml", refused("UnsupportedCharset")),
    "UTF-32 with BOM, charset=utf-32": (
        lambda c: doc(c).encode("utf-32"), "text/xml; charset=utf-32",
        refused("UnsupportedCharset")),
    "UTF-32 with BOM, charset=utf-8": (
        lambda c: doc(c).encode("utf-32"), "text/xml; charset=utf-8",
        refused("UnsupportedCharset", "CharsetMismatch")),
    "UTF-32BE without BOM, no charset": (
        lambda c: doc(c).encode("utf-32-be"), "text/xml", CLIENT_FAULT),
    "UTF-16LE without BOM, no charset": (
        lambda c: doc(c).encode("utf-16-le"), "text/xml", CLIENT_FAULT),
    "UTF-16LE without BOM, declaration UTF-16, no charset": (
        lambda c: doc(c, "UTF-16").encode("utf-16-le"), "text/xml", CLIENT_FAULT),
    "UTF-16LE without BOM, charset=utf-16": (
        lambda c: doc(c).encode("utf-16-le"), "text/xml; charset=utf-16", CLIENT_FAULT),
    "UTF-16LE without BOM, charset=utf-8": (
        lambda c: doc(c).encode("utf-16-le"), "text/xml; charset=utf-8", CLIENT_FAULT),
    "UTF-16BE without BOM, charset=utf-16": (
        lambda c: doc(c).encode("utf-16-be"), "text/xml; charset=utf-16", DECOY_OR_CLIENT),
    "UTF-8 bytes, charset=utf-16": (
        lambda c: doc(c).encode(), "text/xml; charset=utf-16",
        refused("CharsetMismatch", "MalformedXml")),
    "UTF-8 bytes with UTF-8 declaration, charset=utf-16": (
        lambda c: doc(c, "UTF-8").encode(), "text/xml; charset=utf-16",
        refused("CharsetMismatch", "MalformedXml")),
    "UTF-8 BOM, charset=utf-16": (
        lambda c: BOM8 + doc(c).encode(), "text/xml; charset=utf-16",
        refused("CharsetMismatch")),
    "UTF-16 BOM, declaration UTF-8, no charset": (
        lambda c: doc(c, "UTF-8").encode("utf-16"), "text/xml",
        refused("CharsetMismatch", "MalformedXml")),
    "UTF-16 BOM, declaration UTF-8, charset=utf-16": (
        lambda c: doc(c, "UTF-8").encode("utf-16"), "text/xml; charset=utf-16",
        refused("CharsetMismatch", "MalformedXml")),
    "two BOMs (UTF-8 then UTF-16)": (
        lambda c: BOM8 + BOM16LE + doc(c).encode("utf-16-le"), "text/xml", CLIENT_FAULT),
    # Bytes that are not text in their own encoding.
    "invalid UTF-8 byte in a value": (
        lambda c: doc(c).encode().replace(b"</p:idCliente>", b"\xff</p:idCliente>"),
        "text/xml; charset=utf-8", refused("MalformedXml")),
    "invalid UTF-8 byte, no charset": (
        lambda c: doc(c).encode().replace(b"</p:idCliente>", b"\xc3</p:idCliente>"),
        "text/xml", refused("MalformedXml")),
    "overlong UTF-8 '<' (C0 BC)": (
        lambda c: doc(c).encode().replace(b"<p:idCliente>", b"\xc0\xbcp:idCliente>"),
        "text/xml; charset=utf-8", refused("MalformedXml")),
    "CESU-8 surrogate pair": (
        lambda c: doc(c + "\U0001F600").encode("utf-8", "surrogatepass").replace(
            "\U0001F600".encode(), "\ud83d\ude00".encode("utf-8", "surrogatepass")),
        "text/xml; charset=utf-8", refused("MalformedXml")),
    "lone surrogate in UTF-16": (
        lambda c: BOM16LE + doc(c).encode("utf-16-le").replace(
            "</p:idCliente>".encode("utf-16-le"),
            b"\x00\xd8" + "</p:idCliente>".encode("utf-16-le")),
        "text/xml; charset=utf-16", refused("MalformedXml")),
    "odd number of bytes in UTF-16": (
        lambda c: doc(c).encode("utf-16") + b"\x00", "text/xml; charset=utf-16",
        refused("MalformedXml")),
}


@pytest.mark.parametrize("case", ENCODING_CASES)
def test_a_document_whose_encoding_is_not_unambiguously_utf8_or_utf16_is_refused(
        server, schema, db, case):
    build, content_type, expect = ENCODING_CASES[case]
    customer = unique("D")
    before = db.counts()
    result = post(server.soap_url, schema, build(customer), content_type)
    check_outcome(result, expect, db, before, None, customer)


HONEST_ENCODINGS = {
    "UTF-8, no BOM, no declaration, charset=utf-8": (
        lambda c: doc(c).encode(), "text/xml; charset=utf-8"),
    "UTF-8, no charset": (lambda c: doc(c).encode(), "text/xml"),
    "UTF-8, no Content-Type at all": (lambda c: doc(c).encode(), None),
    "UTF-8 with BOM, no charset": (lambda c: BOM8 + doc(c).encode(), "text/xml"),
    "UTF-8 with BOM, charset=UTF-8": (lambda c: BOM8 + doc(c).encode(),
                                      "text/xml; charset=UTF-8"),
    "UTF-8 with declaration UTF-8": (lambda c: doc(c, "UTF-8").encode(),
                                     "text/xml; charset=utf-8"),
    "UTF-8 with BOM and declaration utf-8": (lambda c: BOM8 + doc(c, "utf-8").encode(),
                                             "text/xml; charset=utf-8"),
    "UTF-8 with a version-only declaration": (
        lambda c: ('<?xml version="1.0"?>' + doc(c)).encode(), "text/xml"),
    "UTF-8 with declaration and standalone": (
        lambda c: ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                   + doc(c)).encode(), "text/xml; charset=utf-8"),
    "UTF-16 LE with BOM, charset=utf-16": (lambda c: doc(c).encode("utf-16"),
                                           "text/xml; charset=utf-16"),
    "UTF-16 LE with BOM, no charset": (lambda c: doc(c).encode("utf-16"), "text/xml"),
    "UTF-16 BE with BOM, charset=UTF-16": (lambda c: BOM16BE + doc(c).encode("utf-16-be"),
                                           "text/xml; charset=UTF-16"),
    "UTF-16 BE with BOM, no charset": (lambda c: BOM16BE + doc(c).encode("utf-16-be"),
                                       "text/xml"),
    "UTF-16 with BOM and declaration, charset=utf-16": (
        lambda c: doc(c, "UTF-16").encode("utf-16"), "text/xml; charset=utf-16"),
    "UTF-16 with BOM and declaration, no charset": (
        lambda c: doc(c, "UTF-16").encode("utf-16"), "text/xml"),
    "UTF-16 with BOM and declaration, no Content-Type": (
        lambda c: doc(c, "UTF-16").encode("utf-16"), None),
}


@pytest.mark.parametrize("case", HONEST_ENCODINGS)
def test_honest_utf8_and_utf16_documents_are_answered_with_their_values_intact(
        server, schema, db, case):
    build, content_type = HONEST_ENCODINGS[case]
    customer = unique("Ñ€𝄞")  # Latin-1, BMP and astral characters
    before = db.counts()
    result = post(server.soap_url, schema, build(customer), content_type)
    check_outcome(result, DECOY, db, before, None, customer)
    assert result.value("codigoRespuesta") == "1"


# -- XML tricks: comments, CDATA, PIs, extra Bodies, multi-refs, xsi:, namespaces, DTDs ----

def xml_attempts(hidden: Hidden, customer: str) -> dict[str, Attempt]:
    decoy, entry = query_entry(customer), hidden.entry()
    other = f'xmlns:x="urn:x"'
    cases = {
        # hidden in the constructs XML says are not content: the decoy is the request
        "hidden in a comment before the decoy": (wrap(f"<!--{entry}-->{decoy}"), DECOY),
        "hidden in a comment after the decoy": (wrap(f"{decoy}<!--{entry}-->"), DECOY),
        "hidden in a comment in the Header": (wrap(decoy, header=f"<!--{entry}-->"), DECOY),
        "hidden in a comment before the Envelope": (wrap(decoy, prolog=f"<!--{entry}-->"),
                                                    DECOY),
        "hidden in a comment inside the decoy": (
            wrap(decoy.replace("</p:ConsultarDeuda>", f"<!--{entry}--></p:ConsultarDeuda>")),
            DECOY),
        "hidden in CDATA in the Body": (wrap(f"<![CDATA[{entry}]]>{decoy}"), DECOY_OR_CLIENT),
        "hidden in CDATA in a Header block": (
            wrap(decoy, header=f"<x:note {other}><![CDATA[{entry}]]></x:note>"),
            DECOY_OR_CLIENT),
        "hidden escaped as text in the Body": (
            wrap(entry.replace("<", "&lt;").replace(">", "&gt;") + decoy), DECOY_OR_CLIENT),
        "hidden in a PI in the Body": (wrap(f"<?op {entry}?>{decoy}"), DECOY_OR_CLIENT),
        "hidden in a PI in the Header": (wrap(decoy, header=f"<?op {entry}?>"),
                                         DECOY_OR_CLIENT),
        "hidden in a PI before the Envelope": (wrap(decoy, prolog=f"<?op {entry}?>"),
                                               DECOY_OR_CLIENT),
        # envelopes with more than one place a request could be read from
        "a second Body with the hidden operation": (
            wrap(decoy).replace("</soap:Envelope>", f"<soap:Body>{entry}</soap:Body>"
                                                    "</soap:Envelope>"), CLIENT_FAULT),
        "a first Body with the hidden operation": (
            wrap(decoy).replace("<soap:Body>", f"<soap:Body>{entry}</soap:Body><soap:Body>"),
            CLIENT_FAULT),
        "a second Body under another prefix": (
            wrap(decoy).replace("</soap:Envelope>",
                                f'<e:Body xmlns:e="{SOAP_ENV}">{entry}</e:Body>'
                                "</soap:Envelope>"), CLIENT_FAULT),
        "a Header after the Body": (
            wrap(decoy).replace("</soap:Envelope>", f"<soap:Header>{entry}</soap:Header>"
                                                    "</soap:Envelope>"), CLIENT_FAULT),
        "an Envelope nested in a Header": (
            wrap(decoy, header=wrap(entry)), DECOY_OR_CLIENT),
        "a Body inside the Header": (
            wrap(decoy, header=f"<soap:Body>{entry}</soap:Body>"), DECOY_OR_CLIENT),
        "the hidden operation as a Header block": (wrap(decoy, header=entry),
                                                   DECOY_OR_CLIENT),
        "the hidden operation as a mustUnderstand Header block": (
            wrap(decoy, header=entry.replace(f"<p:{hidden.operation}>",
                                             f'<p:{hidden.operation} soap:mustUnderstand="1">',
                                             1)), CLIENT_FAULT),
        "a SOAP 1.2 Body beside the SOAP 1.1 one": (
            wrap(decoy).replace("</soap:Envelope>",
                                f'<e:Body xmlns:e="{SOAP12_ENV}">{entry}</e:Body>'
                                "</soap:Envelope>"), CLIENT_FAULT),
        # SOAP-encoding multi-refs (spyne resolves href="#id" across the whole envelope)
        "href on the body entry to hidden values in the Header": (
            wrap(f'<p:{hidden.operation} href="#h"/>',
                 header=f'<x:refs {other}><x:v id="h">{hidden.fields()}</x:v></x:refs>'),
            CLIENT_FAULT),
        "href on the decoy to hidden values in the Header": (
            wrap(decoy.replace("<p:ConsultarDeuda>", '<p:ConsultarDeuda href="#h">'),
                 header=f'<x:refs {other}><x:v id="h">'
                        f"<p:idEmpresa>9999</p:idEmpresa>"
                        f"<p:idCliente>{hidden.customer}</p:idCliente></x:v></x:refs>"),
            CLIENT_FAULT),
        "href on a decoy value to a hidden value": (
            wrap(decoy.replace("<p:idCliente>", '<p:idCliente href="#h">'),
                 header=f'<x:v {other} id="h">{hidden.customer}</x:v>'), CLIENT_FAULT),
        "href on the Body to the hidden operation": (
            wrap(decoy).replace("<soap:Body>", '<soap:Body href="#h">').replace(
                "<soap:Body", f'<soap:Header><x:v {other} id="h">{entry}</x:v></soap:Header>'
                              "<soap:Body", 1), DECOY_OR_CLIENT),
        "href on the Envelope's Header to the hidden operation": (
            wrap(decoy, header=f'<x:v {other} id="h">{entry}</x:v>').replace(
                "<soap:Header>", '<soap:Header href="#h">'), DECOY_OR_CLIENT),
        "soapenc multi-ref: body entry refers to a sibling": (
            wrap(f'<p:ConsultarDeuda href="#h"/>'
                 f'<p:ConsultarDeuda id="h"><p:idEmpresa>9999</p:idEmpresa>'
                 f"<p:idCliente>{hidden.customer}</p:idCliente></p:ConsultarDeuda>"),
            CLIENT_FAULT),
        "id on the decoy and href from the hidden operation": (
            wrap(decoy.replace("<p:ConsultarDeuda>", '<p:ConsultarDeuda id="h">'),
                 header=entry.replace(f"<p:{hidden.operation}>",
                                      f'<p:{hidden.operation} href="#h">', 1)),
            DECOY_OR_CLIENT),
        # xsi:type and xsi:nil
        "xsi:type naming the hidden operation's type": (
            wrap(f'<p:ConsultarDeuda xmlns:xsi="{XSI}" '
                 f'xsi:type="p:{hidden.operation}Solicitud">{hidden.fields()}'
                 "</p:ConsultarDeuda>"), CLIENT_FAULT),
        "xsi:type on the decoy naming its own type": (
            wrap(decoy.replace("<p:ConsultarDeuda>",
                               f'<p:ConsultarDeuda xmlns:xsi="{XSI}" '
                               'xsi:type="p:ConsultarDeudaSolicitud">')), DECOY_OR_CLIENT),
        "xsi:type xs:string on idCliente": (
            wrap(decoy.replace("<p:idCliente>",
                               f'<p:idCliente xmlns:xsi="{XSI}" '
                               'xmlns:xs="http://www.w3.org/2001/XMLSchema" '
                               'xsi:type="xs:string">')), DECOY_OR_CLIENT),
        "xsi:nil on idCliente with a hidden value": (
            wrap(decoy.replace(f"<p:idCliente>{customer}",
                               f'<p:idCliente xmlns:xsi="{XSI}" xsi:nil="true">'
                               f"{hidden.customer}")), CLIENT_FAULT),
        "xsi:nil on an absent optional idFactura": (
            wrap(decoy.replace("</p:ConsultarDeuda>",
                               f'<p:idFactura xmlns:xsi="{XSI}" xsi:nil="true"/>'
                               "</p:ConsultarDeuda>")), CLIENT_FAULT),
        # the same element twice
        "idCliente twice, the hidden one second": (
            wrap(decoy.replace("</p:ConsultarDeuda>",
                               f"<p:idCliente>{hidden.customer}</p:idCliente>"
                               "</p:ConsultarDeuda>")), refused("SchemaViolation")),
        "idEmpresa twice, 9999 second": (
            wrap(decoy.replace("</p:idEmpresa>", "</p:idEmpresa><p:idEmpresa>9999"
                                                 "</p:idEmpresa>")), refused("SchemaViolation")),
        "the decoy twice in the Body": (wrap(decoy + decoy), CLIENT_FAULT),
        # namespace prefix games
        "the hidden operation in the Header, p rebound to the contract": (
            wrap(decoy, header=f'<x:w {other}><p:{hidden.operation} xmlns:p="{TNS}">'
                               f"{hidden.fields()}</p:{hidden.operation}></x:w>"),
            DECOY_OR_CLIENT),
        "the hidden operation's prefix rebound to another namespace": (
            wrap(entry.replace(f"<p:{hidden.operation}>",
                               f'<p:{hidden.operation} xmlns:p="{TNS}-evil">', 1)),
            refused("UnknownOperation", "NotSoapEnvelope")),
        "a second entry under another prefix for the contract": (
            wrap(decoy + entry.replace("p:", "q:").replace(
                f"<q:{hidden.operation}>", f'<q:{hidden.operation} xmlns:q="{TNS}">', 1)),
            CLIENT_FAULT),
        "soap prefix rebound on the Body": (
            wrap(entry).replace("<soap:Body>", '<soap:Body xmlns:soap="urn:not-soap">'),
            CLIENT_FAULT),
        "a decoy value in another namespace": (
            wrap(decoy.replace(f"<p:idCliente>{customer}</p:idCliente>",
                               f'<q:idCliente xmlns:q="urn:other">{hidden.customer}'
                               "</q:idCliente>")), refused("SchemaViolation")),
        "decoy values unqualified under a default namespace": (
            wrap(f'<ConsultarDeuda xmlns="{TNS}"><idEmpresa>1234</idEmpresa>'
                 f'<idCliente xmlns="">{hidden.customer}</idCliente></ConsultarDeuda>'),
            refused("SchemaViolation")),
        "the soap prefix rebound to the contract on the decoy": (
            wrap(decoy.replace("p:", "soap:").replace(
                "<soap:ConsultarDeuda>", f'<soap:ConsultarDeuda xmlns:soap="{TNS}">', 1)),
            DECOY),
        # DTDs: refused whatever they declare
        "DOCTYPE with an internal entity expanding to the hidden operation": (
            f'<!DOCTYPE soap:Envelope [<!ENTITY h "{entry}">]>'
            + wrap(f"&h;{decoy}"), refused("DtdForbidden")),
        "DOCTYPE with an internal entity inside a value": (
            f'<!DOCTYPE soap:Envelope [<!ENTITY h "{hidden.customer}">]>'
            + wrap(decoy.replace(customer, "&h;")), refused("DtdForbidden")),
        "DOCTYPE declaring the id attribute": (
            f"<!DOCTYPE soap:Envelope [<!ATTLIST x:v id ID #IMPLIED>]>"
            + wrap(decoy), refused("DtdForbidden")),
        "DOCTYPE with an external subset": (
            '<!DOCTYPE soap:Envelope SYSTEM "file:///etc/passwd">' + wrap(decoy),
            refused("DtdForbidden")),
        "empty DOCTYPE": ("<!DOCTYPE soap:Envelope>" + wrap(decoy), refused("DtdForbidden")),
        "DOCTYPE after an XML declaration": (
            '<?xml version="1.0"?><!DOCTYPE soap:Envelope []>' + wrap(decoy),
            refused("DtdForbidden")),
    }
    return {name: Attempt(body.encode(), expect=expect)
            for name, (body, expect) in cases.items()}


XML_CASES = list(xml_attempts(Hidden("InformarPago"), "C"))


@pytest.mark.parametrize("operation", ["InformarPago", "AltaFactura"])
@pytest.mark.parametrize("case", XML_CASES)
def test_xml_constructs_never_run_a_hidden_operation(server, schema, db, case, operation):
    send_attempt(server, schema, db, xml_attempts, case, operation)


VALUE_SPLITS = {
    "a comment": "<!--x-->",
    "an empty comment": "<!---->",
    "a comment holding markup": "<!--<p:idCliente>EVIL</p:idCliente>-->",
    "a processing instruction": "<?x y?>",
    "two comments": "<!--a--><!--b-->",
}


@pytest.mark.parametrize("split", VALUE_SPLITS)
def test_a_comment_or_pi_inside_a_value_is_not_part_of_it(server, schema, db, split):
    customer = unique("C")
    marker = VALUE_SPLITS[split]
    body = wrap(f"<p:ConsultarDeuda><p:idEmpresa>12{marker}34</p:idEmpresa>"
                f"<p:idCliente>{customer[:5]}{marker}{customer[5:]}</p:idCliente>"
                "</p:ConsultarDeuda>")
    before = db.counts()
    result = post(server.soap_url, schema, body.encode())
    check_outcome(result, DECOY, db, before, None, customer)
    assert db.count("debt_queries", customer_id=customer, biller_id="1234") == 1


def test_cdata_is_text_and_a_comment_between_cdata_sections_is_not(server, schema, db):
    customer = unique("C&<")
    cut = len(customer) // 2
    body = wrap("<p:ConsultarDeuda><p:idEmpresa><![CDATA[1234]]></p:idEmpresa>"
                f"<p:idCliente><![CDATA[{customer[:cut]}]]><!--x-->"
                f"<![CDATA[{customer[cut:]}]]></p:idCliente></p:ConsultarDeuda>")
    before = db.counts()
    result = post(server.soap_url, schema, body.encode())
    check_outcome(result, DECOY, db, before, None, customer)


def test_a_payment_whose_ids_carry_comments_is_stored_under_the_whole_ids(
        server, schema, db):
    operation_id, customer = unique("OP-"), unique("C")
    body = wrap(f"<p:InformarPago><p:idEmpresa>1234</p:idEmpresa>"
                f"<p:idOperacion>{operation_id[:4]}<!--x-->{operation_id[4:]}</p:idOperacion>"
                f"<p:idCliente>{customer[:3]}<?pi?>{customer[3:]}</p:idCliente>"
                "<p:idFactura>F<!---->1</p:idFactura><p:importe>1<!--.-->0.00</p:importe>"
                "<p:moneda>AR<!--x-->S</p:moneda>"
                f"<p:fechaPago>{today()}T12:00<!--x-->:00-03:00</p:fechaPago></p:InformarPago>")
    result = post(server.soap_url, schema, body.encode(), action="InformarPago")
    assert result.is_soap and not result.is_fault, result.describe()
    assert db.rows("SELECT customer_id, invoice_id, currency FROM payments "
                   "WHERE operation_id = :op AND biller_id = '1234'", op=operation_id) == [
        (customer, "F1", "ARS")]


@pytest.mark.parametrize("body_of", [
    lambda c: query_entry(f"{'C' * 19}<!--x-->Z"),
    lambda c: query_entry(f"{'C' * 10}<?x?>{'Z' * 10}"),
    lambda c: query_entry(c).replace("1234", "1234<!--x-->5"),
    lambda c: query_entry(c).replace("1234", "12<!--x--> 34"),
    lambda c: query_entry(c).replace(f">{c}<", f"> <!--x-->{c}<"),
    lambda c: query_entry(c).replace(f">{c}<", f">{c}<!--x-->\t<"),
], ids=["20 characters around a comment", "20 characters around a PI",
        "five digits around a comment", "a space after a comment",
        "leading space before a comment", "trailing tab after a comment"])
def test_a_comment_cannot_make_an_invalid_value_pass(server, schema, db, body_of):
    customer = unique("C")
    before = db.counts()
    result = post(server.soap_url, schema, wrap(body_of(customer)).encode())
    check_outcome(result, refused("SchemaViolation"), db, before, None, customer)


DOCTYPES_NAMING_FILES = {
    "parameter entity": '<!DOCTYPE e [<!ENTITY % p SYSTEM "file://{}"> %p;]>',
    "external subset": '<!DOCTYPE soap:Envelope SYSTEM "file://{}">',
    "general entity used in a value": '<!DOCTYPE e [<!ENTITY g SYSTEM "file://{}">]>',
}


def test_a_dtd_naming_a_file_is_refused_at_once_with_one_message(database_url, schema,
                                                                  tmp_path):
    # Its own server: a worker stuck reading /dev/zero must not slow the other tests.
    dedicated = start_server(database_url, tmp_path)
    outcomes = {}
    try:
        for target in ("/nonexistent/pmc-adapter.dtd", "/etc/passwd", "/dev/zero"):
            for form, doctype in DOCTYPES_NAMING_FILES.items():
                entry = query_entry(unique("D"))
                if "ENTITY g" in doctype:
                    entry = entry.replace("</p:idCliente>", "&g;</p:idCliente>")
                payload = '<?xml version="1.0"?>' + doctype.format(target) + wrap(entry)
                started = time.monotonic()
                try:
                    result = post(dedicated.soap_url, schema, payload.encode(), timeout=8)
                except requests.Timeout:
                    outcomes[f"{form} {target}"] = (
                        "no answer within 8 s: the server hangs reading the file", None)
                    continue
                elapsed = time.monotonic() - started
                if elapsed > 5:
                    outcomes[f"{form} {target}"] = (f"answered after {elapsed:.1f} s", None)
                elif not result.is_soap or result.fault_code != "soap:Client.DtdForbidden":
                    outcomes[f"{form} {target}"] = (result.describe(), None)
                else:
                    outcomes[f"{form} {target}"] = ("ok", result.fault_string)
    finally:
        stop_server(dedicated)
    problems = [f"{name}: {outcome}" for name, (outcome, _) in outcomes.items()
                if outcome != "ok"]
    assert not problems, "DTDs naming files must be refused at once:\n" + "\n".join(problems)
    messages = {message for _, message in outcomes.values()}
    assert len(messages) == 1, f"the message must not tell what the DTD names: {messages}"
    assert "root:" not in "".join(messages)


# -- HTTP: SOAPAction, repeated headers, framing -------------------------------------------

def test_soapaction_of_the_hidden_operation_does_not_make_the_decoy_run_it(
        server, schema, db):
    hidden, customer = hidden_for("InformarPago", db), unique("D")
    before = db.counts()
    result = post(server.soap_url, schema, wrap(query_entry(customer)).encode(),
                  action="InformarPago")
    check_outcome(result, refused("SoapActionMismatch"), db, before, hidden, customer)


def test_soapaction_of_the_decoy_does_not_let_a_visible_payment_run(server, schema, db):
    hidden = Hidden("InformarPago", biller="1234", customer=unique("C"))
    before = db.counts()
    result = post(server.soap_url, schema, hidden.envelope().encode(), action="ConsultarDeuda")
    check_outcome(result, refused("SoapActionMismatch"), db, before, hidden, None)


@pytest.mark.parametrize("action", ["InformarPago", "AltaFactura", "ConsultarDeuda"])
def test_multipart_smuggling_with_any_soapaction_is_refused(server, schema, db, action):
    hidden, customer = hidden_for("InformarPago", db), unique("D")
    body = wrap(f"<![CDATA[{mime((hidden.envelope(), None))}]]>{query_entry(customer)}")
    before = db.counts()
    result = post(server.soap_url, schema, body.encode(), "multipart/related; boundary=XYZ",
                  action=action)
    check_outcome(result, CLIENT_FAULT, db, before, hidden, customer)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_exchange(base_url: str, request: bytes, quiet: float = 1.5,
                 limit: float = 15) -> tuple[list[RawResponse], bool, bytes]:
    """Sends ``request`` byte for byte on one connection; returns the responses read
    until the server closes it or stays quiet for ``quiet`` seconds, whether it closed,
    and any bytes that did not parse as a response."""
    netloc = urlsplit(base_url).netloc
    host, port = netloc.rsplit(":", 1)
    data, closed = b"", False
    with socket.create_connection((host, int(port)), timeout=quiet) as sock:
        sock.sendall(request)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
    responses = []
    while data.startswith(b"HTTP/") and b"\r\n\r\n" in data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", len(rest)))
        responses.append(RawResponse(int(lines[0].split()[1]), headers, rest[:length]))
        data = rest[length:]
    return responses, closed, data


def http_request(body: bytes, headers: list[tuple[str, str]], authorization: str | None = None,
                 content_length: bool = True) -> bytes:
    lines = ["POST /soap HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*pieces: bytes) -> bytes:
    return b"".join(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for piece in pieces)


def valid_hidden_invoice() -> Hidden:
    """An AltaFactura that would pass every check: only framing can decide whether it
    runs, and it must not."""
    hidden = Hidden("AltaFactura", biller="1234", customer=unique("HC"))
    hidden.entry = lambda: (  # type: ignore[method-assign]
        f"<p:AltaFactura><p:idEmpresa>1234</p:idEmpresa>"
        f"<p:idCliente>{hidden.customer}</p:idCliente><p:idFactura>{hidden.invoice}"
        f"</p:idFactura><p:moneda>ARS</p:moneda><p:vencimientos><p:vencimiento>"
        f"<p:fecha>{today() + timedelta(days=30)}</p:fecha><p:importe>5.00</p:importe>"
        f"</p:vencimiento></p:vencimientos></p:AltaFactura>")
    return hidden


def check_raw(responses, closed, rest, server, schema, db, before, hidden, customer,
              allow_decoy: bool, close_required: bool = False):
    traces = hidden.traces(db)
    assert not traces, f"the hidden {hidden.operation} ran: {traces}; responses {responses}"
    assert responses, f"no HTTP response at all (closed={closed}, rest={rest[:200]!r})"
    first = responses[0]
    if first.status == 400 and b"Envelope" not in first.body:
        # refused by the HTTP layer, before any SOAP processing: acceptable for framing
        # the server cannot read one way only; nothing may be written
        assert db.counts() == before, "a request refused by the HTTP layer wrote"
    else:
        result = read_result(first.status, first.headers.get("content-type", ""),
                             first.body, schema)
        check_outcome(result, DECOY_OR_CLIENT if allow_decoy else CLIENT_FAULT, db, before,
                      hidden, customer)
    for later in responses[1:]:
        assert later.status >= 400, (
            f"bytes after the first request were served as a request: {later}")
    if close_required:
        assert closed, "the server must close a connection whose framing it cannot trust"
    assert server.alive()


@pytest.mark.parametrize("order", ["text/xml first", "multipart first"])
def test_two_content_type_headers_are_not_read_two_ways(server, schema, db, order):
    hidden, customer = hidden_for("InformarPago", db), unique("D")
    body = wrap(f"<![CDATA[{mime((hidden.envelope(), None))}]]>"
                f"{query_entry(customer)}").encode()
    types = [("Content-Type", "text/xml; charset=utf-8"),
             ("Content-Type", "multipart/related; boundary=XYZ")]
    if order == "multipart first":
        types.reverse()
    before = db.counts()
    outcome = raw_exchange(server.base_url, http_request(
        body, types + [("Connection", "close")]))
    check_raw(*outcome, server, schema, db, before, hidden, customer, allow_decoy=False)


def test_two_charsets_in_two_content_type_headers_are_not_read_two_ways(server, schema, db):
    hidden, customer = hidden_for("InformarPago", db), unique("D")
    before = db.counts()
    outcome = raw_exchange(server.base_url, http_request(
        _smuggle_utf7(hidden, customer),
        [("Content-Type", "text/xml; charset=utf-8"), ("Content-Type", "text/xml; charset=utf-7"),
         ("Connection", "close")]))
    check_raw(*outcome, server, schema, db, before, hidden, customer, allow_decoy=False)


def test_two_soapaction_headers_run_nothing_hidden(server, schema, db):
    hidden, customer = hidden_for("InformarPago", db), unique("D")
    before = db.counts()
    outcome = raw_exchange(server.base_url, http_request(
        wrap(f"<!--{hidden.entry()}-->{query_entry(customer)}").encode(),
        [("Content-Type", "text/xml"), ("SOAPAction", '"ConsultarDeuda"'),
         ("SOAPAction", '"InformarPago"'), ("Connection", "close")]))
    check_raw(*outcome, server, schema, db, before, hidden, customer, allow_decoy=True)


def test_content_length_and_transfer_encoding_together_are_refused_and_the_rest_dropped(
        server, schema, db):
    hidden, customer = valid_hidden_invoice(), unique("D")
    smuggled = http_request(hidden.envelope().encode(), [("Content-Type", "text/xml")])
    body = chunked(wrap(query_entry(customer)).encode()) + b"0\r\n\r\n" + smuggled
    request = http_request(body, [("Content-Type", "text/xml"),
                                  ("Transfer-Encoding", "chunked")])
    before = db.counts()
    outcome = raw_exchange(server.base_url, request)
    check_raw(*outcome, server, schema, db, before, hidden, customer, allow_decoy=False,
              close_required=True)


def test_two_content_lengths_are_refused(server, schema, db):
    hidden, customer = valid_hidden_invoice(), unique("D")
    decoy = wrap(query_entry(customer)).encode()
    body = decoy + hidden.envelope().encode()
    request = http_request(body, [("Content-Type", "text/xml"),
                                  ("Content-Length", str(len(decoy)))])
    before = db.counts()
    outcome = raw_exchange(server.base_url, request)
    check_raw(*outcome, server, schema, db, before, hidden, customer, allow_decoy=False,
              close_required=True)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_bytes_after_the_declared_body_are_never_a_request(server, schema, db, framing):
    hidden, customer = valid_hidden_invoice(), unique("D")
    decoy = wrap(query_entry(customer)).encode()
    if framing == "chunked":
        request = http_request(chunked(decoy) + b"0\r\n\r\n", [
            ("Content-Type", "text/xml"), ("Transfer-Encoding", "chunked")],
            content_length=False)
    else:
        request = http_request(decoy, [("Content-Type", "text/xml")])
    before = db.counts()
    outcome = raw_exchange(server.base_url, request + hidden.envelope().encode())
    check_raw(*outcome, server, schema, db, before, hidden, customer, allow_decoy=True)
    responses = outcome[0]
    assert responses[0].status == 200, f"the decoy itself must be answered: {responses[0]}"


# -- with callers: smuggling must not lend one caller another's operations ----------------

CALLERS_CONFIG = """
[callers.consulta]
password = "consulta-s3cret"
operations = ["ConsultarDeuda"]

[callers.web]
password = "web-s3cret"
operations = ["AltaFactura"]
"""
CONSULTA = "Basic " + base64.b64encode(b"consulta:consulta-s3cret").decode()


@pytest.fixture(scope="module")
def guarded(database_url, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smuggling-callers")
    (workdir / "adapter.toml").write_text(CALLERS_CONFIG)
    running = start_server(database_url, workdir,  # HTTP Basic: TLS ends in front
                           PMC_ADAPTER_CONFIG=str(workdir / "adapter.toml"),
                           PMC_ADAPTER_TLS_AT_PROXY="true")
    yield running
    stop_server(running)


def caller_vectors(hidden_entry: str, customer: str) -> dict[str, tuple[bytes, str, Expect]]:
    decoy = query_entry(customer)
    hidden_env = wrap(hidden_entry)
    holder = Hidden("InformarPago")
    holder.entry = lambda: hidden_entry  # type: ignore[method-assign]
    in_cdata = wrap(f"<![CDATA[{mime((hidden_env, None))}]]>{decoy}").encode()
    return {
        "multipart/related": (in_cdata, "multipart/related; boundary=XYZ", CLIENT_FAULT),
        "text/xml, multipart/related": (in_cdata, "text/xml, multipart/related; boundary=XYZ",
                                        CLIENT_FAULT),
        "multipart/form-data": (in_cdata, "multipart/form-data; boundary=XYZ", CLIENT_FAULT),
        "utf-7": (_smuggle_utf7(holder, customer), "text/xml; charset=utf-7", CLIENT_FAULT),
        "unicode_escape": (_smuggle_unicode_escape(holder, customer),
                           "text/xml; charset=unicode_escape", CLIENT_FAULT),
        "raw_unicode_escape": (_smuggle_raw_unicode_escape(holder, customer),
                               "text/xml; charset=raw_unicode_escape", CLIENT_FAULT),
        "hz": (_smuggle_hz(holder, customer), "text/xml; charset=hz", CLIENT_FAULT),
        "utf-8 then utf-7": (_smuggle_utf7(holder, customer),
                             "text/xml; charset=utf-8; charset=utf-7", DECOY_OR_CLIENT),
        "comment in the Body": (wrap(f"<!--{hidden_entry}-->{decoy}").encode(),
                                "text/xml", DECOY),
        "as a Header block": (wrap(decoy, header=hidden_entry).encode(), "text/xml",
                              DECOY_OR_CLIENT),
        "the operation itself, openly": (hidden_env.encode(), "text/xml",
                                         refused("NotAuthorized")),
    }


CALLER_VECTORS = list(caller_vectors("<x/>", "C"))


@pytest.mark.parametrize("vector", CALLER_VECTORS)
@pytest.mark.parametrize("operation", ["InformarPago", "AltaFactura"])
def test_a_caller_limited_to_consultardeuda_cannot_pay_or_rewrite_an_invoice(
        guarded, schema, billing_base, operation, vector):
    db = guarded.database
    customer, day = unique("C"), today()
    billing_base(Invoice("1234", customer, "F-1", Currency.ARS,
                         (DueDate(day, Decimal("100.00")),
                          DueDate(day + timedelta(10), Decimal("110.00"))),
                         Origin.BILLING_BASE, description="Agua"))
    if operation == "InformarPago":  # exactly what is due today: it would pay the invoice
        entry = (f"<p:InformarPago><p:idEmpresa>1234</p:idEmpresa>"
                 f"<p:idOperacion>{unique('OP-')}</p:idOperacion>"
                 f"<p:idCliente>{customer}</p:idCliente><p:idFactura>F-1</p:idFactura>"
                 f"<p:importe>100.00</p:importe><p:moneda>ARS</p:moneda>"
                 f"<p:fechaPago>{day}T12:00:00-03:00</p:fechaPago></p:InformarPago>")
    else:  # the same invoice, cheaper
        entry = (f"<p:AltaFactura><p:idEmpresa>1234</p:idEmpresa>"
                 f"<p:idCliente>{customer}</p:idCliente><p:idFactura>F-1</p:idFactura>"
                 f"<p:moneda>ARS</p:moneda><p:vencimientos><p:vencimiento>"
                 f"<p:fecha>{day + timedelta(30)}</p:fecha><p:importe>0.01</p:importe>"
                 f"</p:vencimiento></p:vencimientos><p:descripcion>Reescrita</p:descripcion>"
                 f"</p:AltaFactura>")
    body, content_type, expect = caller_vectors(entry, customer)[vector]
    before = db.counts()
    result = post(guarded.soap_url, schema, body, content_type,
                  headers={"Authorization": CONSULTA})
    invoice = db.rows(select(InvoiceRow.status, InvoiceRow.amount_1, InvoiceRow.amount_2,
                             InvoiceRow.due_date_1, InvoiceRow.description)
                      .where(InvoiceRow.customer_id == customer))
    assert invoice == [("open", Decimal("100.00"), Decimal("110.00"), day, "Agua")], (
        f"the consulta caller changed the invoice with a hidden {operation}: {invoice}; "
        f"the server answered {result.describe()}")
    assert db.count("payments", customer_id=customer) == 0, (
        f"the consulta caller paid the invoice with a hidden InformarPago; "
        f"the server answered {result.describe()}")
    check_outcome(result, expect, db, before, None, None)
    if not result.is_fault:
        assert result.entry.tag == RESPONSE["ConsultarDeuda"]
        assert result.value("codigoRespuesta") == "0", "the decoy sees the open invoice"
