"""The billing base file ("FAC"): fixed-width records of 280 characters.

All knowledge of the format lives here. A file ``FACnnnn.DDMMAA`` holds:

* a header: ``0``, ``400``, the biller number (4), the file date ``YYYYMMDD``;
* detail records: ``5``, client ID (19, left-aligned), invoice ID (20),
  currency (1: ``0`` pesos, ``1`` dollars), three due dates, each
  ``YYYYMMDD`` + amount (11 digits, 2 implied decimals; unused ones all
  zeros), ticket message (40), screen message (15), barcode (60);
* a trailer: ``9400``, the biller number, the file date, the number of detail
  records (7) and the total of their first due-date amounts (16, 2 implied
  decimals).

Every record is padded with zeros to 280 characters. A file whose header or
trailer is wrong is refused whole; a detail record that cannot be read is
rejected alone (with its line and reason, as PMC's rejection file lists
them) and the rest imported.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from adapter import fixed_width
from adapter.text import ascii_digits, control_character
from adapter.domain.model import Currency, DueDate, Invoice, Origin
from adapter.errors import ClientError, InvalidInvoice

RECORD_LENGTH = 280
CURRENCIES = {"0": Currency.ARS, "1": Currency.USD}
CURRENCY_CODES = {currency: code for code, currency in CURRENCIES.items()}
DUE_GROUPS = 3
GROUP = 19  # YYYYMMDD + 11 digits
NO_DATE = "00000000"


class InvalidFacFile(ClientError):
    fault_code = "Client.InvalidFacFile"


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str


@dataclass(frozen=True)
class FacFile:
    biller_id: str
    day: date
    invoices: tuple[Invoice, ...]
    rejected: tuple[Rejected, ...]


def _day(text: str) -> date:
    on = fixed_width.day(text)
    if on is None:
        raise ValueError(f"date {text!r} is not a YYYYMMDD date")
    return on


def _cents(text: str) -> Decimal:
    amount = fixed_width.cents(text)
    if amount is None:
        raise ValueError(f"amount {text!r} is not digits")
    return amount


def _detail(record: str, biller_id: str) -> Invoice:
    customer, invoice_id = record[1:20].strip(), record[20:40].strip()
    if not customer or not invoice_id:
        raise ValueError("client ID and invoice ID are required")
    for field, value in (("client ID", customer), ("invoice ID", invoice_id),
                         ("ticket message", record[98:138]), ("screen message", record[138:153])):
        control = control_character(value)
        if control is not None:
            raise ValueError(f"the {field} holds the control character {control}")
    if record[40] not in CURRENCIES:
        raise ValueError(f"currency {record[40]!r} is neither 0 (pesos) nor 1 (dollars)")
    due_dates = []
    for group in range(DUE_GROUPS):
        start = 41 + group * GROUP
        on, amount = record[start:start + 8], record[start + 8:start + GROUP]
        if on == NO_DATE:
            if amount.strip("0"):
                raise ValueError(f"due date {group + 1} has an amount but no date")
            continue
        due_dates.append(DueDate(_day(on), _cents(amount)))
    return Invoice(biller_id, customer, invoice_id, CURRENCIES[record[40]], tuple(due_dates),
                   Origin.BILLING_BASE, ticket_message=record[98:138].strip(),
                   screen_message=record[138:153].strip())


def parse_fac(text: str) -> FacFile:
    """Read a FAC file; raises InvalidFacFile when it cannot be trusted as a whole."""
    records = [line.rstrip("\r") for line in text.split("\n")]
    while records and not records[-1]:
        records.pop()
    if len(records) < 2:
        raise InvalidFacFile("a FAC file has at least a header and a trailer")
    for number, record in ((1, records[0]), (len(records), records[-1])):
        if len(record) != RECORD_LENGTH:
            raise InvalidFacFile(f"line {number}: records are {RECORD_LENGTH} characters, "
                                 f"not {len(record)}")
    header, trailer = records[0], records[-1]
    if header[:4] != "0400":
        raise InvalidFacFile("line 1: the header starts with 0400")
    if trailer[:4] != "9400":
        raise InvalidFacFile(f"line {len(records)}: the trailer starts with 9400")
    biller_id = header[4:8]
    try:
        day = _day(header[8:16])
    except ValueError:
        raise InvalidFacFile(f"line 1: file date {header[8:16]!r} is not YYYYMMDD") from None
    if trailer[4:8] != biller_id or trailer[8:16] != header[8:16]:
        raise InvalidFacFile("the trailer's biller or date differs from the header's")

    details = records[1:-1]
    declared_count, declared_total = trailer[16:23], trailer[23:39]
    if not ascii_digits(declared_count) or int(declared_count) != len(details):
        raise InvalidFacFile(f"the trailer counts {declared_count!r} records; "
                             f"the file has {len(details)}")
    invoices, rejected, total = [], [], Decimal(0)
    for number, record in enumerate(details, start=2):
        try:
            if len(record) != RECORD_LENGTH or record[0] != "5":
                raise ValueError(f"not a detail record of {RECORD_LENGTH} characters "
                                 "starting with 5")
            total += _cents(record[49:60])
            invoices.append(_detail(record, biller_id))
        except (ValueError, InvalidInvoice) as error:
            rejected.append(Rejected(number, str(error)))
    if not ascii_digits(declared_total) or _cents(declared_total) != total:
        raise InvalidFacFile(f"the trailer's total {declared_total!r} is not the sum of the "
                             "records' first amounts")
    return FacFile(biller_id, day, tuple(invoices), tuple(rejected))


def format_fac(biller_id: str, day: date, invoices: list[Invoice], barcode: str = "") -> str:
    """A FAC file for these invoices (for billers producing one, and for tests)."""
    def pad(record: str) -> str:
        return record.ljust(RECORD_LENGTH, "0")

    lines = [pad(f"0400{biller_id}{day:%Y%m%d}")]
    total = Decimal(0)
    for invoice in invoices:
        groups = "".join(f"{due.on:%Y%m%d}{int(due.amount * 100):011d}"
                         for due in invoice.due_dates)
        groups = groups.ljust(DUE_GROUPS * GROUP, "0")
        total += invoice.due_dates[0].amount
        lines.append(pad(f"5{invoice.customer_id:<19}{invoice.invoice_id:<20}"
                         f"{CURRENCY_CODES[invoice.currency]}{groups}"
                         f"{invoice.ticket_message:<40}{invoice.screen_message:<15}"
                         f"{barcode:<60}"))
    lines.append(pad(f"9400{biller_id}{day:%Y%m%d}{len(invoices):07d}{int(total * 100):016d}"))
    return "\n".join(lines) + "\n"
