"""The bundled legacy ERP (``wsdl/legacy-erp.wsdl``), through zeep.

Every name and format of that ERP lives here: ``GetCustomerItems``,
``PostPayment``, ``ApplyPayment`` and ``ReversePayment``, ``CustCode``/``DocNo``/``TxnRef``, dates ``DD/MM/YYYY``,
amounts ``15230,50``, currencies ``PES``/``DOL``, flags ``Y``/``N``. The
rest of the adapter only sees :mod:`adapter.erp.connector`'s types.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from decimal import Decimal, InvalidOperation

import requests
import zeep
from lxml import etree
from zeep.exceptions import Error as ZeepError
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from adapter import metrics
from adapter.config import ErpSettings
from adapter.domain.calendar import BUSINESS_TZ
from adapter.domain.model import (Currency, DueDate, Invoice, Origin, PaymentNotice,
                                  ReversalNotice)
from adapter.erp.connector import ErpAck, ErpConnector, ErpLookup
from adapter.erp.deadline import DeadlineAdapter, within
from adapter.errors import DeadlineExceeded, ErpRejected, ErpUnavailable

log = logging.getLogger(__name__)

CURRENCIES = {"PES": Currency.ARS, "DOL": Currency.USD}
CURRENCY_CODES = {currency: code for code, currency in CURRENCIES.items()}
POSTED, ALREADY_POSTED = 0, 1
# What can go wrong on the way to the ERP and back, all worth a retry.
TRANSIENT = (requests.RequestException, ZeepError, etree.XMLSyntaxError, OSError)


DATE_FORMAT = "%d/%m/%Y"
TIME_FORMAT = DATE_FORMAT + " %H:%M:%S"  # Buenos Aires time


def parse_date(text: str):
    return datetime.strptime(text, DATE_FORMAT).date()


def format_date(day) -> str:
    return day.strftime(DATE_FORMAT)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=BUSINESS_TZ)


def parse_amount(text: str) -> Decimal:
    try:
        return Decimal(text.replace(",", "."))
    except InvalidOperation:
        raise ValueError(f"not an ERP amount: {text!r}") from None


def format_amount(amount: Decimal) -> str:
    return f"{amount:.2f}".replace(".", ",")


def format_time(moment: datetime) -> str:
    return moment.astimezone(BUSINESS_TZ).strftime(TIME_FORMAT)


class LegacyErp(ErpConnector):
    def __init__(self, options: ErpSettings):
        super().__init__(options)
        self._session = requests.Session()  # pooled connections for every call
        # every call, WSDL load included, ends within the timeout, however the ERP answers
        for scheme in ("http://", "https://"):
            self._session.mount(scheme, DeadlineAdapter())
        if options.auth == "basic":
            self._session.auth = (options.username, options.password)
        self._client: zeep.Client | None = None
        self._lock = threading.Lock()

    def _service(self):
        """zeep's service proxy; the WSDL is loaded once, on first use (and again
        only if that first load failed, e.g. the ERP was down at start)."""
        with self._lock:
            if self._client is None:
                transport = Transport(session=self._session, timeout=self.options.timeout,
                                      operation_timeout=self.options.timeout)
                wsse = (UsernameToken(self.options.username, self.options.password)
                        if self.options.auth == "wsse" else None)
                self._client = zeep.Client(self.options.wsdl, transport=transport, wsse=wsse)
            return self._client.service

    def _call(self, operation: str, **fields):
        """One call of the ERP's, WSDL load included, ended by ``timeout`` (total)."""
        started, result = time.perf_counter(), "unavailable"
        try:
            answer = within(self.options.timeout,
                            lambda: getattr(self._service(), operation)(**fields))
            result = "ok"
            return answer
        except DeadlineExceeded as error:
            raise ErpUnavailable(f"{operation}: {error}") from error
        except TRANSIENT as error:
            raise ErpUnavailable(f"{operation} failed: {error}") from error
        finally:
            metrics.ERP_CALLS.labels(operation, result).observe(time.perf_counter() - started)

    def customer_invoices(self, biller_id: str, customer_id: str) -> ErpLookup:
        result = self._call("GetCustomerItems", CompanyNo=biller_id, CustCode=customer_id)
        try:
            invoices = tuple(self._invoice(biller_id, item) for item in result.Items.Item or ())
        except (ValueError, KeyError, AttributeError) as error:
            raise ErpUnavailable(f"GetCustomerItems answered what cannot be read: {error}") \
                from error
        return ErpLookup(customer_known=result.CustExists == "Y", invoices=invoices)

    @staticmethod
    def _invoice(biller_id: str, item) -> Invoice:
        due = [(getattr(item, f"Due{n}"), getattr(item, f"Amt{n}")) for n in (1, 2, 3)]
        return Invoice(
            biller_id=biller_id, customer_id=item.CustCode, invoice_id=item.DocNo,
            currency=CURRENCIES[item.CurrCode],
            due_dates=tuple(DueDate(parse_date(on), parse_amount(amount))
                            for on, amount in due if on),
            origin=Origin.ERP, description=(item.Descr or "")[:100], paid=item.PaidFlag == "Y")

    def _post(self, operation: str, **fields) -> ErpAck:
        """Call one of the ERP's posting operations (PostPayment, ReversePayment,
        ApplyPayment): they answer alike, 0 done, 1 done before (same TxnRef), else
        refused for good."""
        result = self._call(operation, **fields)
        if result.RetCode not in (POSTED, ALREADY_POSTED):
            raise ErpRejected(f"{operation} refused ({result.RetCode}): {result.RetMsg}")
        return ErpAck(reference=result.ErpDocNo, duplicate=result.RetCode == ALREADY_POSTED)

    def post_payment(self, notice: PaymentNotice, receipt_id: str) -> ErpAck:
        return self._post(
            "PostPayment", CompanyNo=notice.biller_id, TxnRef=notice.operation_id,
            CustCode=notice.customer_id, DocNo=notice.invoice_id,
            Amount=format_amount(notice.amount), CurrCode=CURRENCY_CODES[notice.currency],
            PayDate=format_time(notice.paid_at), Channel=notice.channel,
            Remarks=f"PMC recibo {receipt_id}")

    def reverse_payment(self, reversal: ReversalNotice, reversal_id: str) -> ErpAck:
        return self._post(
            "ReversePayment", CompanyNo=reversal.biller_id, TxnRef=reversal.operation_id,
            RevRef=reversal_id, CustCode=reversal.customer_id, DocNo=reversal.invoice_id,
            Amount=format_amount(reversal.amount), CurrCode=CURRENCY_CODES[reversal.currency],
            RevDate=format_time(reversal.reversed_at),
            Remarks=f"PMC anulacion {reversal_id}" + (
                f": {reversal.reason}" if reversal.reason else ""))

    def apply_payment(self, notice: PaymentNotice, invoice_id: str, receipt_id: str) -> ErpAck:
        return self._post(
            "ApplyPayment", CompanyNo=notice.biller_id, TxnRef=notice.operation_id,
            CustCode=notice.customer_id, DocNo=invoice_id,
            Remarks=f"PMC recibo {receipt_id}: imputado por un operador")
