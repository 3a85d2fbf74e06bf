"""The biller's own invoice list, as its ERP exports it nightly: a CSV file with the
columns of ``scripts/demo-erp-invoices.csv``::

    cliente,factura,moneda,vencimiento1,importe1,vencimiento2,importe2,vencimiento3,importe3

UTF-8 (a BOM allowed), one invoice a line; ``moneda`` ``ARS`` or ``USD``; due dates
``YYYY-MM-DD``, ascending, the unused ones empty; amounts with a point and at most two
decimals. Read one line at a time (:func:`read_invoice_csv` is a generator): a line that
cannot be read raises :class:`InvalidInvoiceCsv` naming it, so that a consumer building a
file from it sends nothing (the whole list is refused). A column this reader does not
know is refused by name rather than ignored.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from datetime import date
from decimal import Decimal, InvalidOperation

from adapter.files import fac
from adapter.domain.model import Currency, DueDate, Invoice, Origin
from adapter.errors import ClientError, InvalidInvoice
from adapter.text import control_character

COLUMNS = ("cliente", "factura", "moneda", "vencimiento1", "importe1", "vencimiento2",
           "importe2", "vencimiento3", "importe3")
REQUIRED = ("cliente", "factura", "moneda", "vencimiento1", "importe1")
LIMITS = {"cliente": fac.CUSTOMER.length, "factura": fac.INVOICE.length}  # a FAC record's


class InvalidInvoiceCsv(ClientError):
    fault_code = "Client.InvalidInvoiceCsv"


def _text(row: dict, column: str, line: int) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise InvalidInvoiceCsv(f"line {line}: {column} is empty")
    control = control_character(value)
    if control is not None:
        raise InvalidInvoiceCsv(f"line {line}: {column} holds the control character "
                                f"{control}")
    if len(value) > LIMITS.get(column, len(value)):
        raise InvalidInvoiceCsv(f"line {line}: {column} {value[:40]!r} is longer than "
                                f"{LIMITS[column]} characters")
    if column in LIMITS and not value.isascii() and not _latin1(value):
        raise InvalidInvoiceCsv(f"line {line}: {column} {value[:40]!r} has characters a "
                                "FAC file (latin-1) cannot hold")
    return value


def _latin1(value: str) -> bool:
    try:
        value.encode(fac.ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def _due(row: dict, n: int, line: int) -> DueDate | None:
    on, amount = (row.get(f"vencimiento{n}") or "").strip(), (row.get(f"importe{n}") or "").strip()
    if not on and not amount:
        return None
    if not on or not amount:
        raise InvalidInvoiceCsv(f"line {line}: vencimiento{n} and importe{n} go together")
    try:
        day = date.fromisoformat(on) if len(on) == 10 and on[4] == on[7] == "-" else None
    except ValueError:
        day = None
    if day is None:
        raise InvalidInvoiceCsv(f"line {line}: vencimiento{n} {on!r} is not a YYYY-MM-DD date")
    try:
        value = Decimal(amount) if amount.replace(".", "", 1).isdigit() and \
            amount.isascii() else None
    except InvalidOperation:
        value = None
    if value is None or value.as_tuple().exponent < -2:
        raise InvalidInvoiceCsv(f"line {line}: importe{n} {amount!r} is not an amount "
                                "(digits, a point, at most two decimals)")
    if value > fac.MAX_AMOUNT:
        raise InvalidInvoiceCsv(f"line {line}: importe{n} {amount} is more than a FAC file "
                                f"holds ({fac.MAX_AMOUNT})")
    return DueDate(day, value)


def read_invoice_csv(path: str | os.PathLike, biller_id: str) -> Iterator[Invoice]:
    """The invoices of the list at ``path``, for ``biller_id``, one at a time."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = csv.DictReader(handle, strict=True)
        try:
            header = rows.fieldnames
        except (csv.Error, UnicodeDecodeError) as error:
            raise InvalidInvoiceCsv(f"line 1: {error}") from None
        if header is None:
            raise InvalidInvoiceCsv("the invoice list is empty (no header line)")
        unknown = [name for name in header if name not in COLUMNS]
        if unknown:
            raise InvalidInvoiceCsv(f"line 1: unknown column(s) {', '.join(map(repr, unknown))}; "
                                    f"the columns are {','.join(COLUMNS)}")
        missing = [name for name in REQUIRED if name not in header]
        if missing:
            raise InvalidInvoiceCsv(f"line 1: missing column(s) {', '.join(missing)}")
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as error:
                raise InvalidInvoiceCsv(f"line {rows.line_num}: {error}") from None
            line = rows.line_num
            if None in row or None in row.values():
                raise InvalidInvoiceCsv(f"line {line}: {len(header)} fields expected")
            currency = _text(row, "moneda", line)
            if currency not in ("ARS", "USD"):
                raise InvalidInvoiceCsv(f"line {line}: moneda {currency!r} is neither ARS "
                                        "nor USD")
            dues = [_due(row, n, line) for n in (1, 2, 3)]
            if dues[0] is None or (dues[1] is None and dues[2] is not None):
                raise InvalidInvoiceCsv(f"line {line}: due dates are given in order, "
                                        "vencimiento1 first")
            try:
                invoice = Invoice(biller_id, _text(row, "cliente", line),
                                  _text(row, "factura", line), Currency(currency),
                                  tuple(due for due in dues if due is not None),
                                  Origin.BILLING_BASE)
            except InvalidInvoice as error:
                raise InvalidInvoiceCsv(f"line {line}: {error}") from None
            yield invoice
