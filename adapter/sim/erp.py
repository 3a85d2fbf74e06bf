"""``pmc-adapter erp-sim``: a reference legacy ERP over real HTTP SOAP.

It speaks the bundled ``wsdl/legacy-erp.wsdl`` (not our contract) at ``/erp``
and keeps its own store: the invoices of a CSV file, the payments it
receives, applied once per operation ID however often they are sent, and their
reversals (``ReversePayment``: once per payment; refused for a payment it does
not have, or with other data). It is
for demos, tests and QA, with knobs to misbehave:

* ``--latency-ms N``: every call takes N ms longer (a payment is applied
  first and acknowledged late, as a slow ERP does);
* ``--fail-rate F``: that share of calls is answered with a SOAP fault, before
  anything is done;
* ``trickle_ms`` (``/_sim/config`` only): SOAP answers are sent one byte every N
  ms, after the work is done (a link or an ERP that dribbles);
* being stopped (and started again: ``--state FILE`` keeps its payments).

Besides SOAP: ``GET /health``; ``GET /_sim/state`` (JSON, with
``{"payments": {"<TxnRef>": {"received": n, "applied": m}}, "reversals": {"<TxnRef>":
{"received": n, "applied": m, "refused": k}}}``) and
``POST /_sim/config`` (JSON ``{"latency_ms": N, "fail_rate": F}``) to turn
the knobs while it runs.

CSV header: ``cliente,factura,moneda,vencimiento1,importe1,vencimiento2,
importe2,vencimiento3,importe3`` (ISO dates, ``ARS``/``USD``, decimal point,
empty cells for unused due dates).
"""
from __future__ import annotations

import base64
import csv
import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs

import xmlschema
from lxml import etree

from adapter.domain.model import Currency
from adapter.erp.legacy import (CURRENCY_CODES, format_amount, format_date, parse_amount,
                                parse_time)
from adapter.soap.contract import SOAP_ENV_NS, secure_parser, wsdl_dir, wsdl_for
from adapter.soap.security import WSSE_NS

log = logging.getLogger(__name__)

ERP_NS = "http://factuplus.example/ws/cobranzas/2004"
XML = "text/xml; charset=utf-8"


def legacy_wsdl_path() -> Path:
    return wsdl_dir() / "legacy-erp.wsdl"


def _schema() -> xmlschema.XMLSchema:
    wsdl = etree.parse(str(legacy_wsdl_path()), secure_parser())
    (schema,) = wsdl.getroot().iter("{http://www.w3.org/2001/XMLSchema}schema")
    return xmlschema.XMLSchema(etree.tostring(schema).decode())


@dataclass
class Item:
    customer: str
    doc_no: str
    currency: str
    due: list[tuple[date, Decimal]]
    paid: bool = False

    def settled_by(self, payment: dict) -> bool:
        """Whether a posted payment pays this item (else it stays unapplied cash)."""
        day = parse_time(payment["PayDate"]).date()
        due = next((amount for on, amount in self.due if day <= on), None)
        return (not self.paid and payment["CurrCode"] == self.currency
                and due is not None and parse_amount(payment["Amount"]) == due)


def load_items(path: str | Path) -> dict[str, list[Item]]:
    """Invoices by customer code, from the simulator's CSV."""
    items: dict[str, list[Item]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                due = [(date.fromisoformat(row[f"vencimiento{n}"]),
                        Decimal(row[f"importe{n}"]))
                       for n in (1, 2, 3) if (row.get(f"vencimiento{n}") or "").strip()]
                item = Item(row["cliente"].strip(), row["factura"].strip(),
                            CURRENCY_CODES[Currency(row["moneda"].strip())], due)
            except (KeyError, ValueError, ArithmeticError) as error:
                raise ValueError(f"{path}, line {line}: {error!r}") from None
            items.setdefault(item.customer, []).append(item)
    return items


@dataclass
class SimulatedErp:
    items: dict[str, list[Item]]
    latency_ms: int = 0
    fail_rate: float = 0.0
    credentials: tuple[str, str] | None = None
    state_file: Path | None = None
    payments: dict[str, dict] = field(default_factory=dict)
    reversals: dict[str, dict] = field(default_factory=dict)
    trickle_ms: int = 0
    # PostPayment calls that arrived while another call with the same TxnRef was still
    # being answered: a payment sent twice at the same time
    overlaps: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._schema = _schema()
        if self.state_file and self.state_file.exists():
            saved = json.loads(self.state_file.read_text())
            self.payments = saved["payments"]
            self.reversals = saved.get("reversals", {})
            for customer, doc_no in saved.get("paid", []):
                for item in self.items.get(customer, []):
                    if item.doc_no == doc_no:
                        item.paid = True

    # -- WSGI ----------------------------------------------------------------------

    def __call__(self, environ, start_response):
        status, content_type, body = self._route(environ)
        start_response(status, [("Content-Type", content_type),
                                ("Content-Length", str(len(body)))])
        trickle = self.trickle_ms / 1000
        if trickle and environ.get("PATH_INFO") == "/erp" and \
                environ.get("REQUEST_METHOD") == "POST":
            return self._dribble(body, trickle)
        return [body]

    @staticmethod
    def _dribble(body: bytes, pause: float):
        for index in range(len(body)):
            yield body[index:index + 1]
            time.sleep(pause)

    def _route(self, environ):
        path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
        if path == "/erp" and method == "POST":
            return self._soap(environ)
        if path == "/erp" and "wsdl" in {k.lower() for k in parse_qs(
                environ.get("QUERY_STRING", ""), keep_blank_values=True)}:
            address = f"{environ.get('wsgi.url_scheme', 'http')}://{environ['HTTP_HOST']}/erp"
            return "200 OK", XML, wsdl_for(address, legacy_wsdl_path())
        if path == "/health":
            return "200 OK", "application/json", b'{"status": "ok"}'
        if path == "/_sim/state":
            return "200 OK", "application/json", json.dumps(self.state()).encode()
        if path == "/_sim/config" and method == "POST":
            knobs = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
            with self._lock:
                self.latency_ms = int(knobs.get("latency_ms", self.latency_ms))
                self.fail_rate = float(knobs.get("fail_rate", self.fail_rate))
                self.trickle_ms = int(knobs.get("trickle_ms", self.trickle_ms))
            return "200 OK", "application/json", json.dumps(
                {"latency_ms": self.latency_ms, "fail_rate": self.fail_rate,
                 "trickle_ms": self.trickle_ms}).encode()
        return "404 Not Found", "text/plain", b"not found\n"

    def state(self) -> dict:
        with self._lock:
            return {"payments": {ref: {"received": p["received"], "applied": p["applied"],
                                       **({"applied_to": p["AppliedTo"]}
                                          if p.get("AppliedTo") else {})}
                                 for ref, p in self.payments.items()},
                    "reversals": {ref: {key: r[key] for key in ("received", "applied", "refused")}
                                  for ref, r in self.reversals.items()},
                    "overlaps": self.overlaps,
                    "paid": sorted([c, i.doc_no] for c, items in self.items.items()
                                   for i in items if i.paid)}

    # -- SOAP ----------------------------------------------------------------------

    def _soap(self, environ):
        try:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            envelope = etree.fromstring(body, secure_parser())
            request = envelope.find(f"{{{SOAP_ENV_NS}}}Body")[0]
            self._schema.validate(request)
        except (etree.XMLSyntaxError, TypeError, IndexError, xmlschema.XMLSchemaException) as error:
            return self._fault("Client", f"ERR-100 invalid request: {error}")
        if not self._authorized(environ, envelope):
            return self._fault("Client", "ERR-401 usuario o clave invalidos")
        if random.random() < self.fail_rate:
            time.sleep(self.latency_ms / 1000)
            return self._fault("Server", "ERR-500 base de datos bloqueada, reintente")

        operation = etree.QName(request).localname
        fields = {etree.QName(child).localname: (child.text or "") for child in request}
        if operation == "GetCustomerItems":
            time.sleep(self.latency_ms / 1000)
            return self._reply(self._customer_items(fields))
        reference = f"{operation}:{fields.get('TxnRef')}"
        with self._lock:
            if reference in self._in_flight:
                self.overlaps += 1
                log.warning("%s arrived again while the first was in flight", reference)
            self._in_flight.add(reference)
        try:
            if operation == "ReversePayment":
                answer = self._reverse_payment(fields)
            elif operation == "ApplyPayment":
                answer = self._apply_payment(fields)
            else:
                answer = self._post_payment(fields)
            time.sleep(self.latency_ms / 1000)  # applied already; only the answer is late
        finally:
            with self._lock:
                self._in_flight.discard(reference)
        return self._reply(answer)

    def _authorized(self, environ, envelope) -> bool:
        if self.credentials is None:
            return True
        user, password = self.credentials
        basic = environ.get("HTTP_AUTHORIZATION", "")
        if basic.startswith("Basic "):
            return base64.b64decode(basic[6:]).decode() == f"{user}:{password}"
        token = envelope.find(f".//{{{WSSE_NS}}}UsernameToken")
        return token is not None and \
            token.findtext(f"{{{WSSE_NS}}}Username") == user and \
            token.findtext(f"{{{WSSE_NS}}}Password") == password

    def _customer_items(self, fields) -> etree._Element:
        items = self.items.get(fields["CustCode"])
        response = etree.Element(f"{{{ERP_NS}}}GetCustomerItemsResponse", nsmap={"erp": ERP_NS})
        result = etree.SubElement(response, f"{{{ERP_NS}}}GetCustomerItemsResult")
        etree.SubElement(result, f"{{{ERP_NS}}}CustExists").text = "Y" if items else "N"
        listing = etree.SubElement(result, f"{{{ERP_NS}}}Items")
        with self._lock:
            for item in items or []:
                node = etree.SubElement(listing, f"{{{ERP_NS}}}Item")
                values = [("DocNo", item.doc_no), ("CustCode", item.customer),
                          ("CurrCode", item.currency), ("Descr", f"Factura {item.doc_no}")]
                for n, (on, amount) in enumerate(item.due, start=1):
                    values += [(f"Due{n}", format_date(on)), (f"Amt{n}", format_amount(amount))]
                values.append(("PaidFlag", "Y" if item.paid else "N"))
                for name, value in values:
                    etree.SubElement(node, f"{{{ERP_NS}}}{name}").text = value
        return response

    def _post_payment(self, fields) -> etree._Element:
        with self._lock:
            payment = self.payments.setdefault(fields["TxnRef"], {
                "received": 0, "applied": 0, "erp_doc": f"RC-{len(self.payments) + 1:08d}"})
            payment["received"] += 1
            duplicate = payment["applied"] > 0
            if not duplicate:
                payment["applied"] = 1
                payment.update({k: fields.get(k) for k in ("CustCode", "DocNo", "Amount",
                                                           "CurrCode", "PayDate")})
                for item in self.items.get(fields["CustCode"], []):
                    if item.doc_no == fields["DocNo"] and item.settled_by(fields):
                        item.paid = True
                        payment["settled"] = True
                self._save()
        log.info("payment %s received (%s)", fields["TxnRef"], "again" if duplicate else "applied")
        return self._posting_result(
            "PostPayment", 1 if duplicate else 0,
            "Pago ya registrado" if duplicate else "Pago registrado", payment["erp_doc"])

    def _apply_payment(self, fields) -> etree._Element:
        """A person applied an unapplied payment to a document: it pays that document."""
        with self._lock:
            payment = self.payments.get(fields["TxnRef"])
            if payment is None or payment.get("CustCode") != fields["CustCode"]:
                code, message = 9, "Pago inexistente"
            elif payment.get("AppliedTo") == fields["DocNo"]:
                code, message = 1, "Pago ya imputado"
            elif payment.get("settled") or payment.get("AppliedTo"):
                code, message = 9, "Pago ya imputado a otro documento"
            else:
                code, message = 0, "Pago imputado"
                payment["AppliedTo"] = fields["DocNo"]
                for item in self.items.get(fields["CustCode"], []):
                    if item.doc_no == fields["DocNo"]:
                        item.paid = True
                        payment["settled"] = True
                self._save()
        log.info("payment %s applied to %s (%s)", fields["TxnRef"], fields["DocNo"], message)
        return self._posting_result("ApplyPayment", code, message)

    def _reverse_payment(self, fields) -> etree._Element:
        with self._lock:
            reversal = self.reversals.setdefault(fields["TxnRef"], {
                "received": 0, "applied": 0, "refused": 0,
                "erp_doc": f"AN-{len(self.reversals) + 1:08d}"})
            reversal["received"] += 1
            payment = self.payments.get(fields["TxnRef"])
            if reversal["applied"]:
                code, message = 1, "Anulacion ya registrada"
            elif payment is None or payment.get("applied") != 1:
                code, message = 9, "Pago inexistente"
            elif any(payment.get(key) != fields.get(key)
                     for key in ("CustCode", "DocNo", "Amount", "CurrCode")):
                code, message = 9, "Los datos no coinciden con el pago"
            else:
                code, message = 0, "Anulacion registrada"
                reversal["applied"] = 1
                reversal["RevRef"] = fields["RevRef"]
                if payment.pop("settled", False):
                    for item in self.items.get(fields["CustCode"], []):
                        if item.doc_no == fields["DocNo"]:
                            item.paid = False
            if code == 9:
                reversal["refused"] += 1
            self._save()
        log.info("reversal of %s received (%s)", fields["TxnRef"], message)
        return self._posting_result("ReversePayment", code, message,
                                    reversal["erp_doc"] if code != 9 else None)

    @staticmethod
    def _posting_result(operation: str, code: int, message: str,
                        erp_doc: str | None = None) -> etree._Element:
        """The answer of PostPayment, ApplyPayment or ReversePayment: one shape."""
        response = etree.Element(f"{{{ERP_NS}}}{operation}Response", nsmap={"erp": ERP_NS})
        result = etree.SubElement(response, f"{{{ERP_NS}}}{operation}Result")
        etree.SubElement(result, f"{{{ERP_NS}}}RetCode").text = str(code)
        etree.SubElement(result, f"{{{ERP_NS}}}RetMsg").text = message
        if erp_doc is not None:
            etree.SubElement(result, f"{{{ERP_NS}}}ErpDocNo").text = erp_doc
        return response

    def _save(self) -> None:
        if self.state_file is None:
            return
        paid = [[c, i.doc_no] for c, items in self.items.items() for i in items if i.paid]
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({"payments": self.payments, "paid": paid,
                                         "reversals": self.reversals}))
        temporary.replace(self.state_file)

    # -- envelopes -----------------------------------------------------------------

    @staticmethod
    def _envelope(entry: etree._Element) -> bytes:
        envelope = etree.Element(f"{{{SOAP_ENV_NS}}}Envelope", nsmap={"soapenv": SOAP_ENV_NS})
        etree.SubElement(envelope, f"{{{SOAP_ENV_NS}}}Body").append(entry)
        return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")

    def _reply(self, entry):
        return "200 OK", XML, self._envelope(entry)

    def _fault(self, code: str, message: str):
        fault = etree.Element(f"{{{SOAP_ENV_NS}}}Fault")
        etree.SubElement(fault, "faultcode").text = f"soapenv:{code}"
        etree.SubElement(fault, "faultstring").text = message
        return "500 Internal Server Error", XML, self._envelope(fault)


def serve(bind: str, invoices: str, latency_ms: int = 0, fail_rate: float = 0.0,
          credentials: str | None = None, state_file: str | None = None) -> None:
    from adapter.gunicorn_app import serve_wsgi

    items = load_items(invoices)  # fail early, before gunicorn starts, on a bad CSV
    user_password = tuple(credentials.split(":", 1)) if credentials else None
    # One process: the simulated ERP's store lives in memory (and --state).
    serve_wsgi(lambda: SimulatedErp(items, latency_ms, fail_rate, user_password,
                                    Path(state_file) if state_file else None),
               bind=bind, workers=1, threads=64)
