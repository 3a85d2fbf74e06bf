"""Properties of the contract (issue 7: one parse, the validated tree is what runs).

* Every request the XSD allows -- generated straight from its types: ids of every
  length and character XML 1.0 allows, every lexical form of xs:decimal, dates and
  dateTimes with their offsets and the whitespace their ``collapse`` facet strips,
  optional elements present or not -- serialised every way XML allows (prefixes,
  default namespaces, pretty printing, declarations, UTF-8 or UTF-16, comments
  and CDATA) gets its normal answer, with its values stored exactly as sent;
  never a ``Server`` fault and never ``Client.SchemaViolation``.
* Every mutation that makes such a request contract-invalid gets a ``Client``
  fault (``SchemaViolation``) and writes nothing.
"""
from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from lxml import etree
from sqlalchemy import select

from adapter.soap import contract
from adapter.storage.orm import InvoiceRow, PaymentRow
from support.data import today
from support.soap import SOAP_ENV, TNS, Result, read_result

OPERATIONS = ("ConsultarDeuda", "InformarPago", "AltaFactura")
SERVED_BILLERS = ("1234", "5678")
# derandomize: the same examples on every run, so that CI passes or fails the same way for
# the same code (a new run explores nothing new; change the examples by editing here).
PROPERTY_SETTINGS = dict(deadline=None, database=None, derandomize=True,
                         suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                HealthCheck.too_slow,
                                                HealthCheck.filter_too_much])


# -- shared helpers: one exchange, described whatever came back ------------------------

def post(url: str, schema, body: bytes, content_type: str | None,
         action: str | None = None) -> Result:
    """POSTs ``body`` as is and reads the answer as conftest's read_result does."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    if action is not None:
        headers["SOAPAction"] = f'"{action}"'
    response = requests.post(url, data=body, headers=headers, timeout=60)
    return read_result(response.status_code, response.headers.get("Content-Type", ""),
                       response.content, schema)


@dataclass
class Endpoint:
    url: str
    schema: object
    db: object


@pytest.fixture(scope="module")
def endpoint(server, schema) -> Endpoint:
    """The session's server (SQLite, then PostgreSQL), shared by every example."""
    return Endpoint(server.soap_url, schema, server.database)


# -- the request model and its serialisation -------------------------------------------------

@dataclass
class Node:
    name: str
    value: str | None = None  # simple content, lexically as sent
    children: list[Node] | None = None
    namespace: str | None = TNS  # None: unqualified
    attributes: dict[str, str] = field(default_factory=dict)
    element_inside: bool = False  # a child element in the middle of the value

    def copy(self) -> Node:
        return replace(self, children=None if self.children is None
                       else [child.copy() for child in self.children],
                       attributes=dict(self.attributes))


@dataclass(frozen=True)
class Style:
    """How a request is written: nothing here changes what it means."""

    env_prefix: str | None  # None: SOAP-ENV is the default namespace
    tns_prefix: str | None  # None: the contract's namespace is the default one
    tns_on: str  # "Envelope", "Body" or "entry": where it is declared
    pretty: bool
    declaration: bool
    encoding: str  # "UTF-8", "UTF-8-BOM" or "UTF-16"
    charset_param: bool
    media_type: str
    header: bool
    soap_action: bool
    comments: bool  # comments between elements
    split_values: bool  # comments inside values
    cdata: bool
    seed: int  # where comments, splits and CDATA go


styles = st.builds(
    Style,
    env_prefix=st.sampled_from(["soap", "SOAP-ENV", "s", None, "env", "p"]),
    tns_prefix=st.sampled_from(["p", None, "tns", "ns0", "soap", "x-1"]),
    tns_on=st.sampled_from(["Envelope", "Body", "entry"]),
    pretty=st.booleans(), declaration=st.booleans(),
    encoding=st.sampled_from(["UTF-8", "UTF-16", "UTF-8-BOM"]),
    charset_param=st.booleans(),
    media_type=st.sampled_from(["text/xml", "TEXT/XML", "Text/Xml"]),
    header=st.booleans(), soap_action=st.booleans(), comments=st.booleans(),
    split_values=st.booleans(), cdata=st.booleans(), seed=st.integers(0, 2 ** 16))


def _simple_value(element: etree._Element) -> str:
    """An element's value as XML defines it: its text, without comments and PIs."""
    return (element.text or "") + "".join(
        child.tail or "" for child in element if not isinstance(child.tag, str))


def serialise(operation: str, nodes: list[Node], style: Style) -> tuple[bytes, str | None]:
    """The request as bytes, with the Content-Type it travels with."""
    if any(_unqualified(node) for node in nodes):
        # lxml cannot undeclare a default namespace: no default ones around unqualified names
        style = replace(style, env_prefix=style.env_prefix or "soap",
                        tns_prefix=style.tns_prefix or "p")
    rng = random.Random(style.seed)
    tns_on = "entry" if style.tns_prefix == style.env_prefix else style.tns_on
    tns = {style.tns_prefix: TNS}
    root = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={
        style.env_prefix: SOAP_ENV, **(tns if tns_on == "Envelope" else {})})
    if style.header:
        etree.SubElement(root, f"{{{SOAP_ENV}}}Header")
    body = etree.SubElement(root, f"{{{SOAP_ENV}}}Body", nsmap=tns if tns_on == "Body" else None)
    if style.comments:
        body.append(etree.Comment(" ConsultarDeuda "))
    entry = etree.SubElement(body, f"{{{TNS}}}{operation}",
                             nsmap=tns if tns_on == "entry" else None)
    if style.comments and rng.random() < 0.5:
        body.append(etree.Comment("after"))

    def fill(parent: etree._Element, children: list[Node]) -> None:
        for node in children:
            if style.comments and rng.random() < 0.25:
                parent.append(etree.Comment("c"))
            tag = f"{{{node.namespace}}}{node.name}" if node.namespace else node.name
            element = etree.SubElement(parent, tag)
            for name, value in node.attributes.items():
                element.set(name, value)
            if node.children is not None:
                fill(element, node.children)
            elif node.element_inside:
                cut = rng.randint(0, len(node.value))
                element.text = node.value[:cut]
                etree.SubElement(element, f"{{{TNS}}}b").tail = node.value[cut:]
            elif (style.cdata and node.value and rng.random() < 0.4
                  and "]]>" not in node.value and "\r" not in node.value):
                element.text = etree.CDATA(node.value)
            elif style.split_values and len(node.value) >= 2 and rng.random() < 0.4:
                cut = rng.randint(1, len(node.value) - 1)
                element.text = node.value[:cut]
                marker = etree.Comment("x") if rng.random() < 0.7 else etree.PI("pi", "x")
                element.append(marker)
                marker.tail = node.value[cut:]
            else:
                element.text = node.value
        if style.comments and rng.random() < 0.25:
            parent.append(etree.Comment("end"))

    fill(entry, nodes)
    encoding = "UTF-16" if style.encoding == "UTF-16" else "UTF-8"
    payload = etree.tostring(root, xml_declaration=style.declaration, encoding=encoding,
                             pretty_print=style.pretty)
    if style.encoding == "UTF-8-BOM":
        payload = b"\xef\xbb\xbf" + payload
    _check_serialisation(payload, operation, nodes)
    content_type = style.media_type
    if style.charset_param:
        content_type += "; charset=" + ("utf-16" if encoding == "UTF-16" else "utf-8")
    return payload, content_type


def _unqualified(node: Node) -> bool:
    return node.namespace is None or any(_unqualified(c) for c in node.children or [])


def _check_serialisation(payload: bytes, operation: str, nodes: list[Node]) -> None:
    """Guards the test itself: the bytes mean exactly the model."""
    parsed = etree.fromstring(payload)
    (entry,) = [child for child in parsed.find(f"{{{SOAP_ENV}}}Body")
                if isinstance(child.tag, str)]
    assert entry.tag == f"{{{TNS}}}{operation}"

    def compare(element: etree._Element, children: list[Node]) -> None:
        elements = [child for child in element if isinstance(child.tag, str)]
        assert [e.tag for e in elements] == [
            f"{{{n.namespace}}}{n.name}" if n.namespace else n.name for n in children], (
            "test bug: lxml wrote other element names than the model's")
        for child, node in zip(elements, children):
            if node.children is not None:
                compare(child, node.children)
            elif not node.element_inside:
                assert _simple_value(child) == node.value, (
                    f"test bug: {node.name} reads {_simple_value(child)!r}, "
                    f"not {node.value!r}")

    compare(entry, nodes)


# -- values, straight from the XSD's types ---------------------------------------------------

def is_xml_char(char: str) -> bool:
    code = ord(char)
    return (code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD
            or 0x10000 <= code <= 0x10FFFF)


# Characters that need escaping, that other regex dialects call spaces (XSD's \s is only
# space, tab, CR and LF), C1 controls, BOM, private use, noncharacters and astral ones.
EDGE_CHARS = ["<", "&", ">", '"', "'", "]", "\u00a0", "\u0085", "\u2028", "\u3000",
              "\u2003", "\u1680", "\u202f", "\ufeff", "\u200b", "\x7f", "\x80", "\x9f",
              "ñ", "€", "\ufffd", "\ue000", "\ufdd0", "\U0001d11e", "\U0001f600",
              "\U0010fffd", "\U000e0001"]
any_char = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.sampled_from(EDGE_CHARS),
    st.characters(min_codepoint=0x80, max_codepoint=0xFFFD, exclude_categories=["Cs"]),
    st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF),
    st.sampled_from(["\t", "\n", "\r", " "]),
).filter(is_xml_char)
line_char = any_char.filter(lambda c: c not in "\n\r")  # XSD's "."
solid_char = any_char.filter(lambda c: c not in " \t\n\r")  # XSD's "\S"
ascii_char = st.characters(min_codepoint=0x21, max_codepoint=0x7e)  # printable ASCII, no space


def strings(alphabet, min_size=0, max_size=None):
    return st.lists(alphabet, min_size=min_size, max_size=max_size).map("".join)


# The facets, read from the bundled XSD itself: the strategies follow the contract.
XSD = contract.schema()
# The id patterns this file generates, in the spellings the contract has used (to XSD,
# \S and [^ \t\n\r] are the same class).
PATTERNS = {"trimmed": ([r"\S(.*\S)?"], [r"[^ \t\n\r](.*[^ \t\n\r])?"]),
            "solid": ([r"\S+"], [r"[^ \t\n\r]+"]),
            "ascii": ([r"[!-~]+"],)}


def lengths(type_name: str) -> tuple[int, int]:
    xsd_type = XSD.types[type_name]
    return xsd_type.min_length or 0, xsd_type.max_length


def facet(type_name: str, name: str):
    found = XSD.types[type_name].facets.get(f"{{http://www.w3.org/2001/XMLSchema}}{name}")
    return None if found is None else found.value


def pattern_of(type_name: str) -> str:
    regexps = XSD.types[type_name].patterns.regexps
    kind = next((kind for kind, spellings in PATTERNS.items() if regexps in spellings), None)
    assert kind is not None, (f"{type_name}'s pattern is now {regexps}: teach this test's "
                              "strategies the new one")
    return kind


def id_strategy(type_name: str):
    """Strings of an id type: its lengths and its pattern (trimmed or solid)."""
    low, high = lengths(type_name)
    if pattern_of(type_name) == "solid":
        return strings(solid_char, max(low, 1), high)
    if pattern_of(type_name) == "ascii":
        return strings(ascii_char, max(low, 1), high)
    return st.one_of(solid_char, st.tuples(solid_char, strings(line_char, max_size=high - 2),
                                           solid_char).map("".join))


biller_ids = st.sampled_from(SERVED_BILLERS)
customer_ids = id_strategy("IdCliente")
invoice_ids = id_strategy("IdFactura")
query_ids = id_strategy("IdConsulta")
currencies = st.sampled_from(list(XSD.types["Moneda"].enumeration))
collapse_space = strings(st.sampled_from([" ", "\t", "\n", "\r"]), max_size=3)
TOTAL_DIGITS = facet("Importe", "totalDigits")
FRACTION_DIGITS = facet("Importe", "fractionDigits")
MIN_AMOUNT = facet("Importe", "minInclusive")
MAX_AMOUNT = facet("Importe", "maxInclusive")  # None where the XSD sets none


@st.composite
def amounts(draw) -> tuple[str, Decimal]:
    """Importe: an xs:decimal within the XSD's bounds, totalDigits and fractionDigits, in
    every lexical form: +5, 007.50, 5., .5, -0, surrounded by collapsible space."""
    fraction = draw(st.text("0123456789", min_size=0, max_size=FRACTION_DIGITS))
    integer_digits = TOTAL_DIGITS - len(fraction)
    if MAX_AMOUNT is not None:
        integer_digits = min(integer_digits, len(str(int(MAX_AMOUNT))))
    integer = draw(st.text("0123456789", min_size=0, max_size=integer_digits))
    significant = integer.lstrip("0") + fraction.rstrip("0")
    assume(len(significant) <= TOTAL_DIGITS)
    if not integer and not fraction:
        integer = "0"
    leading_zeros = draw(st.sampled_from(["", "", "0", "00"]))
    if fraction:
        body = f"{leading_zeros}{integer}.{fraction}"
    else:
        body = leading_zeros + integer + draw(st.sampled_from(["", "", "."]))
    value = Decimal(body)
    assume(MIN_AMOUNT <= value and (MAX_AMOUNT is None or value <= MAX_AMOUNT))
    sign = draw(st.sampled_from(["", "", "+"] + (["-"] if value == 0 else [])))
    text = draw(collapse_space) + sign + body + draw(collapse_space)
    return text, value


def _instant_bound(name: str, default: datetime) -> datetime:
    """A FechaHoraConZona bound of the XSD, as a naive UTC datetime; ``default`` (the
    instants Python can represent in every offset) where the XSD sets none."""
    value = facet("FechaHoraConZona", name)
    if value is None:
        return default
    bound = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    bound = bound.astimezone(timezone.utc).replace(tzinfo=None)
    return max(bound, default) if name == "minInclusive" else min(bound, default)


FIRST_INSTANT = _instant_bound("minInclusive", datetime(1, 1, 2))
LAST_INSTANT = _instant_bound("maxInclusive", datetime(9999, 12, 30, 23, 59, 59))


def _offset_text(minutes: int, zero_form: str) -> str:
    if minutes == 0 and zero_form != "hh:mm":
        return zero_form
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


# Offsets in minutes: Buenos Aires, the extremes, and half and quarter hours both ways
# (-03:30 is Newfoundland's; -00:01 is 23:59 of the previous day in UTC terms).
offsets = st.one_of(st.just(0), st.integers(-14 * 60, 14 * 60),
                    st.sampled_from([-180, 14 * 60, -14 * 60, 330, 345, -210, -570, -1]))
zero_offset_forms = st.sampled_from(["Z", "+00:00", "-00:00", "hh:mm"])


@st.composite
def payment_times(draw) -> tuple[str, datetime]:
    """FechaHoraConZona: a dateTime with its offset, 0-6 fraction digits, an instant
    within the XSD's bounds (and what Python represents in every offset: 0001-01-02 to
    9999-12-30T23:59:59 UTC), surrounded by collapsible space."""
    instant = draw(st.datetimes(min_value=FIRST_INSTANT, max_value=LAST_INSTANT,
                                timezones=st.just(timezone.utc)))
    digits = draw(st.integers(0, 6))
    micro = instant.microsecond - instant.microsecond % 10 ** (6 - digits)
    instant = instant.replace(microsecond=micro)
    minutes = draw(offsets)
    try:
        local = (instant + timedelta(minutes=minutes)).replace(tzinfo=None)
    except OverflowError:
        assume(False)
    fraction = f".{micro:06d}"[:digits + 1] if digits else ""
    text = (f"{local.year:04d}-{local.month:02d}-{local.day:02d}T{local.hour:02d}:"
            f"{local.minute:02d}:{local.second:02d}{fraction}"
            f"{_offset_text(minutes, draw(zero_offset_forms))}")
    return draw(collapse_space) + text + draw(collapse_space), instant


@st.composite
def due_dates(draw) -> tuple[str, date, int | None]:
    """xs:date, with or without an offset, surrounded by collapsible space."""
    with_offset = draw(st.booleans())
    day = draw(st.dates(min_value=date(1, 1, 2) if with_offset else date(1, 1, 1),
                        max_value=date(9999, 12, 30) if with_offset else date(9999, 12, 31)))
    minutes = draw(offsets) if with_offset else None
    text = f"{day.year:04d}-{day.month:02d}-{day.day:02d}"
    if minutes is not None:
        text += _offset_text(minutes, draw(zero_offset_forms))
    return draw(collapse_space) + text + draw(collapse_space), day, minutes


def optional(strategy):
    return st.one_of(st.none(), strategy)


# -- requests -------------------------------------------------------------------------------

@dataclass
class Request:
    operation: str
    nodes: list[Node]
    meaning: dict  # what the request says, as values

    def copy(self) -> Request:
        return Request(self.operation, [node.copy() for node in self.nodes], self.meaning)


@st.composite
def debt_queries(draw) -> Request:
    biller, customer = draw(biller_ids), draw(customer_ids)
    invoice = draw(optional(invoice_ids))
    nodes = [Node("idEmpresa", biller), Node("idCliente", customer)]
    if invoice is not None:
        nodes.append(Node("idFactura", invoice))
    return Request("ConsultarDeuda", nodes, {"biller": biller, "customer": customer,
                                             "invoice": invoice})


@st.composite
def payment_notices(draw) -> Request:
    biller, customer, invoice = draw(biller_ids), draw(customer_ids), draw(invoice_ids)
    # idOperacion (printable ASCII) must be fresh in every example: a generated part and a
    # unique one, in either order
    assert pattern_of("IdOperacion") == "ascii"
    operation_part = draw(strings(ascii_char, 0, lengths("IdOperacion")[1] - 13))
    unique_first = draw(st.booleans())
    token = uuid.uuid4().hex[:13]
    operation_id = token + operation_part if unique_first else operation_part + token
    amount_text, amount = draw(amounts())
    currency = draw(currencies)
    paid_text, paid_at = draw(payment_times())
    channel = draw(optional(strings(any_char, 0, lengths("Canal")[1])))
    query_id = draw(optional(query_ids))
    nodes = [Node("idEmpresa", biller), Node("idOperacion", operation_id),
             Node("idCliente", customer), Node("idFactura", invoice),
             Node("importe", amount_text), Node("moneda", currency),
             Node("fechaPago", paid_text)]
    if channel is not None:
        nodes.append(Node("canal", channel))
    if query_id is not None:
        nodes.append(Node("idConsulta", query_id))
    return Request("InformarPago", nodes, {
        "biller": biller, "operation_id": operation_id, "customer": customer,
        "invoice": invoice, "amount": amount, "currency": currency, "paid_at": paid_at,
        "channel": channel, "query_id": query_id})


@st.composite
def new_invoices(draw) -> Request:
    biller, customer, invoice = draw(biller_ids), draw(customer_ids), draw(invoice_ids)
    currency = draw(currencies)
    dues = draw(st.lists(st.tuples(due_dates(), amounts()), min_size=1, max_size=3,
                         unique_by=lambda due: due[0][1]))
    if draw(st.integers(0, 9)) < 8:  # mostly ascending; else as drawn
        dues.sort(key=lambda due: due[0][1])
    description = draw(optional(strings(any_char, 0, lengths("Descripcion")[1])))
    ticket = draw(optional(strings(any_char, 0, lengths("MensajeTicket")[1])))
    screen = draw(optional(strings(any_char, 0, lengths("MensajePantalla")[1])))
    nodes = [Node("idEmpresa", biller), Node("idCliente", customer),
             Node("idFactura", invoice), Node("moneda", currency),
             Node("vencimientos", children=[
                 Node("vencimiento", children=[Node("fecha", fecha[0]),
                                               Node("importe", importe[0])])
                 for fecha, importe in dues])]
    for name, value in (("descripcion", description), ("mensajeTicket", ticket),
                        ("mensajePantalla", screen)):
        if value is not None:
            nodes.append(Node(name, value))
    days = [fecha[1] for fecha, _ in dues]
    starts = [datetime.combine(fecha[1], datetime.min.time()) - timedelta(minutes=fecha[2] or 0)
              for fecha, _ in dues]
    ascending = all(a < b for a, b in zip(days, days[1:])) and all(
        a < b for a, b in zip(starts, starts[1:]))
    return Request("AltaFactura", nodes, {
        "biller": biller, "customer": customer, "invoice": invoice, "currency": currency,
        "dues": [(fecha[1], importe[1]) for fecha, importe in dues], "ascending": ascending,
        "description": description, "ticket": ticket, "screen": screen})


REQUESTS = {"ConsultarDeuda": debt_queries(), "InformarPago": payment_notices(),
            "AltaFactura": new_invoices()}
RESPONSES = {op: f"{{{TNS}}}{op}Response" for op in OPERATIONS}


# -- the property: every contract-valid request is answered, its values intact ---------------

def remember(text: str) -> None:
    """Hypothesis prints notes with a falsifying example; plain tests have none."""
    try:
        note(text)
    except InvalidArgument:
        pass

def send(endpoint: Endpoint, request: Request, style: Style) -> tuple[Result, bytes]:
    payload, content_type = serialise(request.operation, request.nodes, style)
    remember(f"request bytes: {payload[:3000]!r}")
    remember(f"Content-Type: {content_type}")
    result = post(endpoint.url, endpoint.schema, payload, content_type,
                  request.operation if style.soap_action else None)
    remember(f"answer: {result.describe()}")
    return result, payload


def _debt_query_rows(db, meaning: dict) -> int:
    where = {"biller_id": meaning["biller"], "customer_id": meaning["customer"]}
    if meaning["invoice"] is not None:
        where["invoice_id"] = meaning["invoice"]
    clause = " AND ".join(f"{column} = :{column}" for column in where)
    if meaning["invoice"] is None:
        clause += " AND invoice_id IS NULL"
    return db.rows(f"SELECT count(*) FROM debt_queries WHERE {clause}", **where)[0][0]


def check_stored(db, request: Request, result: Result, queries_before: int) -> None:
    meaning = request.meaning
    if request.operation == "ConsultarDeuda":
        assert _debt_query_rows(db, meaning) == queries_before + 1, (
            f"the debt query was not stored with the client ID sent: {meaning}")
    elif request.operation == "InformarPago":
        rows = db.rows(select(PaymentRow.customer_id, PaymentRow.invoice_id, PaymentRow.amount,
                              PaymentRow.currency, PaymentRow.paid_at, PaymentRow.channel,
                              PaymentRow.query_id)
                       .where(PaymentRow.operation_id == meaning["operation_id"],
                              PaymentRow.biller_id == meaning["biller"]))
        assert len(rows) == 1, (f"the notice was not stored (codigoRespuesta "
                                f"{result.value('codigoRespuesta')}): {meaning}")
        customer, invoice, amount, currency, paid_at, channel, query_id = rows[0]
        stored = {"customer": customer, "invoice": invoice, "amount": amount,
                  "currency": currency, "paid_at": paid_at, "query_id": query_id,
                  "channel": "" if channel is None and meaning["channel"] == "" else channel}
        sent = {name: meaning[name] for name in stored}
        assert stored == sent, f"stored {stored}, sent {sent}"
    elif result.value("codigoRespuesta") == "0":
        rows = db.rows(select(InvoiceRow.currency, InvoiceRow.status, InvoiceRow.description,
                              InvoiceRow.ticket_message, InvoiceRow.screen_message,
                              InvoiceRow.due_date_1, InvoiceRow.amount_1,
                              InvoiceRow.due_date_2, InvoiceRow.amount_2,
                              InvoiceRow.due_date_3, InvoiceRow.amount_3)
                       .where(InvoiceRow.biller_id == meaning["biller"],
                              InvoiceRow.customer_id == meaning["customer"],
                              InvoiceRow.invoice_id == meaning["invoice"]))
        assert len(rows) == 1, f"AltaFactura answered 0 and stored no invoice: {meaning}"
        dues = [value for due in meaning["dues"] for value in due]
        dues += [None] * (6 - len(dues))
        sent = (meaning["currency"], "open", meaning["description"] or "",
                meaning["ticket"] or "", meaning["screen"] or "", *dues)
        assert tuple(rows[0]) == sent, f"stored {tuple(rows[0])}, sent {sent}"


def check_answered(endpoint: Endpoint, request: Request, style: Style) -> None:
    db = endpoint.db
    queries_before = (_debt_query_rows(db, request.meaning)
                      if request.operation == "ConsultarDeuda" else 0)
    result, payload = send(endpoint, request, style)
    sent = f"\nrequest: {payload[:1500]!r}"
    assert result.problem is None, (f"not a SOAP answer of the contract: "
                                    f"{result.describe()}{sent}")
    if result.is_fault:
        code = result.fault_code
        assert not code.startswith("soap:Server"), (
            f"a contract-valid {request.operation} got a Server fault: "
            f"{result.describe()}{sent}")
        assert code != "soap:Client.SchemaViolation", (
            f"a contract-valid {request.operation} was refused: {result.describe()}{sent}")
        allowed = ({"soap:Client.InvalidInvoice"} if request.operation == "AltaFactura"
                   and not request.meaning["ascending"] else set())
        assert code in allowed, (f"a contract-valid {request.operation} was refused: "
                                 f"{result.describe()}{sent}")
        return
    assert result.entry.tag == RESPONSES[request.operation], result.describe()
    check_stored(db, request, result, queries_before)


@pytest.mark.parametrize("operation", OPERATIONS)
@settings(max_examples=40, **PROPERTY_SETTINGS)
@given(data=st.data())
def test_every_contract_valid_request_is_answered_and_stored_as_sent(endpoint, operation,
                                                                      data):
    request = data.draw(REQUESTS[operation], label="request")
    style = data.draw(styles, label="style")
    check_answered(endpoint, request, replace(style, split_values=False))


@pytest.mark.parametrize("operation", OPERATIONS)
@settings(max_examples=15, **PROPERTY_SETTINGS)
@given(data=st.data())
def test_comments_pis_and_cdata_inside_values_change_nothing(endpoint, operation, data):
    # XML: a comment or processing instruction is not part of the value it sits in,
    # and a CDATA section is text. (Kept apart so that its failures do not hide others.)
    request = data.draw(REQUESTS[operation], label="request")
    style = data.draw(styles, label="style")
    check_answered(endpoint, request, replace(style, split_values=True, cdata=True))


PLAIN = Style(env_prefix="soap", tns_prefix="p", tns_on="Envelope", pretty=False,
              declaration=False, encoding="UTF-8", charset_param=True,
              media_type="text/xml", header=False, soap_action=True, comments=False,
              split_values=False, cdata=False, seed=0)


def _payment(**values) -> Request:
    meaning = {"biller": "1234", "operation_id": "OP-" + uuid.uuid4().hex,
               "customer": "C1", "invoice": "F1", "amount": Decimal("10.00"),
               "currency": "ARS", "paid_at": datetime(2026, 12, 1, 13, 15, tzinfo=timezone.utc),
               "channel": None, "query_id": None}
    texts = {"importe": "10.00", "fechaPago": "2026-12-01T10:15:00-03:00"}
    texts.update(values.pop("texts", {}))
    meaning.update(values)
    nodes = [Node("idEmpresa", meaning["biller"]), Node("idOperacion", meaning["operation_id"]),
             Node("idCliente", meaning["customer"]), Node("idFactura", meaning["invoice"]),
             Node("importe", texts["importe"]), Node("moneda", meaning["currency"]),
             Node("fechaPago", texts["fechaPago"])]
    return Request("InformarPago", nodes, meaning)


@pytest.mark.parametrize("texts", [
    {"fechaPago": " 2026-12-01T10:15:00-03:00 "},
    {"fechaPago": "\n\t2026-12-01T10:15:00-03:00\r\n"},
    {"importe": " 10.00 "},
    {"importe": "\t+0010.\n"},
    {"importe": "+00000000000000000000010.00"},
], ids=["spaces around fechaPago", "newlines and tabs around fechaPago",
        "spaces around importe", "tab, sign, zeros and a dot", "many leading zeros"])
def test_whitespace_that_the_xsd_collapses_is_accepted_and_stored(endpoint, texts):
    check_answered(endpoint, _payment(texts=texts), PLAIN)


UTC = timezone.utc


@pytest.mark.parametrize("text, instant", [
    ("2026-12-01T10:15:00-03:30", datetime(2026, 12, 1, 13, 45, tzinfo=UTC)),
    ("2026-12-01T00:00:30-00:01", datetime(2026, 12, 1, 0, 1, 30, tzinfo=UTC)),
    ("2026-12-01T10:15:00+05:45", datetime(2026, 12, 1, 4, 30, tzinfo=UTC)),
    ("2026-12-01T10:15:00-00:00", datetime(2026, 12, 1, 10, 15, tzinfo=UTC)),
    ("2026-12-01T10:15:00.000001+00:00", datetime(2026, 12, 1, 10, 15, 0, 1, tzinfo=UTC)),
    ("2026-12-01T10:15:00.5Z", datetime(2026, 12, 1, 10, 15, 0, 500000, tzinfo=UTC)),
    ("0001-01-02T00:00:00Z", datetime(1, 1, 2, tzinfo=UTC)),
    ("0001-01-01T10:00:00-14:00", datetime(1, 1, 2, tzinfo=UTC)),
    ("9999-12-30T23:59:59Z", datetime(9999, 12, 30, 23, 59, 59, tzinfo=UTC)),
    ("9999-12-31T13:59:59+14:00", datetime(9999, 12, 30, 23, 59, 59, tzinfo=UTC)),
])
def test_a_payment_time_is_stored_as_the_instant_it_names(endpoint, text, instant):
    check_answered(endpoint, _payment(paid_at=instant, texts={"fechaPago": text}), PLAIN)


def _invoice(due_text: str, due: date, amount_text: str, amount: Decimal) -> Request:
    meaning = {"biller": "5678", "customer": "C-" + uuid.uuid4().hex[:12], "invoice": "F-1",
               "currency": "USD", "dues": [(due, amount)], "ascending": True,
               "description": None, "ticket": None, "screen": None}
    nodes = [Node("idEmpresa", "5678"), Node("idCliente", meaning["customer"]),
             Node("idFactura", "F-1"), Node("moneda", "USD"),
             Node("vencimientos", children=[Node("vencimiento", children=[
                 Node("fecha", due_text), Node("importe", amount_text)])])]
    return Request("AltaFactura", nodes, meaning)


@pytest.mark.parametrize("template, amount_text, amount", [
    (" {} ", "10.00", Decimal("10.00")),
    ("\n\t{}\r\n", "\t7.5 ", Decimal("7.50")),
    ("{}-03:00", " +007. ", Decimal("7")),
    ("{}Z", ".25", Decimal("0.25")),
    (" {}+14:00\n", "0", Decimal("0")),
    ("{}-00:00", "-0.00", Decimal("0")),
    ("{}", "000000000000000000000012.30", Decimal("12.30")),
], ids=["spaces", "newlines, tabs and CR", "offset, sign and zeros", "Z and a leading dot",
        "offset +14:00 and spaces", "-00:00 and negative zero", "many leading zeros"])
def test_a_due_date_and_amount_in_any_lexical_form_are_stored_as_their_values(
        endpoint, template, amount_text, amount):
    due = today() + timedelta(days=40)
    check_answered(endpoint, _invoice(template.format(due.isoformat()), due, amount_text,
                                      amount), PLAIN)


@pytest.mark.parametrize("space", ["\u00a0", "\u0085", "\u2028", "\u3000", "\u2003", "\u1680",
                                   "\u202f", "\ufeff"])
def test_only_space_tab_cr_and_lf_are_whitespace_to_xsd_patterns(endpoint, space):
    # \S in an XSD pattern excludes [#x20\t\n\r] only: these characters may start or end
    # an idCliente or idFactura (an idOperacion is printable ASCII: they are refused there,
    # see INVALID_VALUES).
    request = _payment(customer=f"{space}C{space}", invoice=f"{space}F",
                       operation_id=f"OP{uuid.uuid4().hex}")
    check_answered(endpoint, request, PLAIN)


# -- mutations: every contract-invalid request is a Client fault that writes nothing ---------

REQUIRED = {
    "ConsultarDeuda": ["idEmpresa", "idCliente"],
    "InformarPago": ["idEmpresa", "idOperacion", "idCliente", "idFactura", "importe",
                     "moneda", "fechaPago"],
    "AltaFactura": ["idEmpresa", "idCliente", "idFactura", "moneda", "vencimientos"],
}
# Values each simple element refuses, whichever revision of the XSD: lengths one past
# its own, patterns, enumerations, decimals, dates, and whitespace where the type keeps it.
def _too_long(type_name: str, char: str) -> str:
    return char * (lengths(type_name)[1] + 1)


INVALID_VALUES = {
    "idEmpresa": ["123", "12345", "12a4", " 1234", "1234 ", "\u0661\u0662\u0663\u0664", "",
                  "99 9"],
    "idCliente": [_too_long("IdCliente", "C"), _too_long("IdCliente", "\u00f1"), "", " C1",
                  "C1 ", "\tC1", "C1\n", "C\n1", "C\r1"],
    "idFactura": [_too_long("IdFactura", "F"), _too_long("IdFactura", "\U0001f600"), "",
                  " F1", "F1\t", "F\n1"],
    "idOperacion": [_too_long("IdOperacion", "O"), "", "OP 1", "OP\t1", " OP1", "OP1\n",
                    "OP\u00a01", "OP\u20281", "OP\u00851", "OP\u009b1", "OP\u00f11"],
    "idConsulta": [_too_long("IdConsulta", "Q"), "", "Q 1"],
    "importe": ["10.001", "-1", "-0.01", "1e3", "1,00", "", "abc", "1" * (TOTAL_DIGITS + 1),
                "NaN", "INF", ". 5", "+-1", "0x10", "1.2.3", "\u0661\u0660"]
               + ([] if MAX_AMOUNT is None else [str(MAX_AMOUNT + Decimal("0.01"))]),
    "moneda": ["EUR", "ars", " ARS", "ARS ", "", "PESOS"],
    "fechaPago": ["2026-11-26T10:00:00", "2026-11-26", "2026-11-26T25:00:00Z",
                  "2026-02-30T10:00:00Z", "2026-11-26T10:00:00+15:00",
                  "2026-11-26 10:00:00Z", "26/11/2026 10:00", "", "2026-11-26T10:00Z",
                  "2026-11-26T10:00:00+0300", "2026-13-01T10:00:00Z"],
    "fecha": ["2030-13-01", "2030-02-30", "30-12-2030", "2030-12-10T00:00:00", "",
              "2030-12-1", "20301210"],
    "canal": [_too_long("Canal", "K")],
    "descripcion": [_too_long("Descripcion", "D"), _too_long("Descripcion", "\U0001f600")],
    "mensajeTicket": [_too_long("MensajeTicket", "T")],
    "mensajePantalla": [_too_long("MensajePantalla", "P")],
}


def _simple_nodes(nodes: list[Node]) -> list[tuple[list[Node], int]]:
    """(sibling list, index) of every simple element, nested ones included."""
    found = []
    for index, node in enumerate(nodes):
        if node.children is None:
            found.append((nodes, index))
        else:
            found += _simple_nodes(node.children)
    return found


def _sibling_lists(nodes: list[Node]) -> list[list[Node]]:
    lists = [nodes]
    for node in nodes:
        if node.children is not None and node.name != "vencimientos":
            lists += _sibling_lists(node.children)
        elif node.children is not None:
            for due in node.children:
                lists.append(due.children)
    return lists


def mutate(data, request: Request) -> tuple[Request, str]:
    """One change that makes ``request`` contract-invalid, and its description."""
    mutated = request.copy()
    nodes = mutated.nodes
    kind = data.draw(st.sampled_from([
        "drop", "duplicate", "swap", "unknown element", "unknown attribute", "bad value",
        "element inside a value", "wrong namespace", "due dates count"]), label="mutation")
    if kind == "due dates count" and mutated.operation != "AltaFactura":
        kind = "bad value"
    if kind == "drop":
        name = data.draw(st.sampled_from(REQUIRED[mutated.operation]
                                         + (["fecha", "importe (due)", "vencimiento*"]
                                            if mutated.operation == "AltaFactura" else [])))
        if name == "vencimiento*":
            next(n for n in nodes if n.name == "vencimientos").children.clear()
        elif name in ("fecha", "importe (due)"):
            due = data.draw(st.sampled_from(
                next(n for n in nodes if n.name == "vencimientos").children))
            due.children = [c for c in due.children if c.name != name.split()[0]]
        else:
            mutated.nodes = [n for n in nodes if n.name != name]
        return mutated, f"dropped required {name}"
    if kind == "duplicate":
        siblings = data.draw(st.sampled_from(_sibling_lists(nodes)))
        index = data.draw(st.integers(0, len(siblings) - 1))
        siblings.insert(index + 1, siblings[index].copy())
        return mutated, f"duplicated {siblings[index].name}"
    if kind == "swap":
        siblings = data.draw(st.sampled_from(_sibling_lists(nodes)))
        index = data.draw(st.integers(0, len(siblings) - 2))
        siblings[index], siblings[index + 1] = siblings[index + 1], siblings[index]
        return mutated, f"swapped {siblings[index + 1].name} and {siblings[index].name}"
    if kind == "unknown element":
        siblings = data.draw(st.sampled_from(_sibling_lists(nodes)))
        index = data.draw(st.integers(0, len(siblings)))
        namespace = data.draw(st.sampled_from([TNS, "urn:other", None, SOAP_ENV]))
        name = data.draw(st.sampled_from(["extra", "idEmpresa2", "Idcliente", "vencimiento",
                                          "importeAPagar"]))
        siblings.insert(index, Node(name, "1", namespace=namespace))
        return mutated, f"unknown element {{{namespace}}}{name} at {index}"
    if kind == "unknown attribute":
        targets = [None] + [siblings[i] for siblings, i in _simple_nodes(nodes)] + [
            node for node in nodes if node.children is not None]
        target = data.draw(st.sampled_from(targets), label="attribute on (None: the operation)")
        name = data.draw(st.sampled_from(["foo", "id", "href", "{urn:other}foo", "lang",
                                          f"{{{TNS}}}x"]))
        if target is None:
            mutated.entry_attribute = name  # type: ignore[attr-defined]
            return mutated, f"attribute {name} on the operation element"
        target.attributes[name] = "1"
        return mutated, f"attribute {name} on {target.name}"
    if kind == "bad value":
        choices = [(siblings, i) for siblings, i in _simple_nodes(nodes)
                   if siblings[i].name in INVALID_VALUES]
        siblings, index = data.draw(st.sampled_from(choices))
        node = siblings[index]
        node.value = data.draw(st.sampled_from(INVALID_VALUES[node.name]))
        return mutated, f"{node.name} = {node.value!r}"
    if kind == "element inside a value":
        siblings, index = data.draw(st.sampled_from(_simple_nodes(nodes)))
        siblings[index].element_inside = True
        return mutated, f"an element inside {siblings[index].name}"
    if kind == "wrong namespace":
        siblings, index = data.draw(st.sampled_from(_simple_nodes(nodes)
                                                    + [(nodes, i) for i in range(len(nodes))]))
        siblings[index].namespace = data.draw(st.sampled_from(["urn:other", None,
                                                               TNS + "/", SOAP_ENV]))
        return mutated, f"{siblings[index].name} in namespace {siblings[index].namespace}"
    container = next(n for n in nodes if n.name == "vencimientos")
    template = container.children[0]
    count = data.draw(st.sampled_from([0, 4, 5]))
    container.children = [template.copy() for _ in range(count)]
    return mutated, f"{count} due dates"


def send_mutated(endpoint: Endpoint, request: Request, style: Style) -> Result:
    payload, content_type = serialise(request.operation, request.nodes, style)
    attribute = getattr(request, "entry_attribute", None)
    if attribute is not None:
        parsed = etree.fromstring(payload)
        entry = [c for c in parsed.find(f"{{{SOAP_ENV}}}Body") if isinstance(c.tag, str)][0]
        entry.set(attribute, "1")
        payload = etree.tostring(parsed, xml_declaration=style.declaration,
                                 encoding="UTF-16" if style.encoding == "UTF-16" else "UTF-8")
    remember(f"request bytes: {payload[:3000]!r}")
    result = post(endpoint.url, endpoint.schema, payload, content_type,
                  request.operation if style.soap_action else None)
    remember(f"answer: {result.describe()}")
    return result


@settings(max_examples=120, **PROPERTY_SETTINGS)
@given(data=st.data())
def test_every_contract_invalid_mutation_is_a_client_fault_that_writes_nothing(endpoint,
                                                                               data):
    operation = data.draw(st.sampled_from(OPERATIONS), label="operation")
    request = data.draw(REQUESTS[operation], label="valid request")
    style = data.draw(styles, label="style")
    mutated, change = mutate(data, request)
    remember(f"mutation: {change}")
    before = endpoint.db.counts()
    result = send_mutated(endpoint, mutated, style)
    assert result.problem is None, f"{change}: not a SOAP answer: {result.describe()}"
    assert result.is_fault, f"{change}: a contract-invalid request was answered: " \
                            f"{result.describe()}"
    assert result.fault_code == "soap:Client.SchemaViolation", (
        f"{change}: expected soap:Client.SchemaViolation; got {result.describe()}")
    assert endpoint.db.counts() == before, f"{change}: a refused request wrote"
