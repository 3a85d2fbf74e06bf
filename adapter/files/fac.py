"""The billing base file ("FAC"): fixed-width records of 280 characters, CRLF.

All knowledge of the format lives here, in the layout the network reads (the manual:
docs/billing-base.rst; the public WHMCS gateway module for PMC writes it so). Positions 1-based:

* header: ``0``; ``400`` at 2-4; the biller at 5-8; the file date ``YYYYMMDD`` at 9-16;
  zeros to 280;
* detail: ``5``; client ID at 2-20 (19, left-aligned, spaces); invoice ID at 21-40 (20);
  currency at 41 (``0`` pesos, ``1`` dollars); three groups of due date ``YYYYMMDD`` and
  amount (11 digits, 2 implied decimals) at 42-98, an unused one all zeros; zeros at 99-117;
  the client reference at 118-136 (19: the client ID again); ticket message at 137-176
  (40); screen message at 177-191 (15); barcode at 192-251 (60, spaces when none); zeros
  at 252-280;
* trailer: ``9400``; the biller at 5-8; the date at 9-16; the detail count at 17-23 (7);
  zeros at 24-30; the total of the first amounts at 31-46 (16, 2 implied decimals); zeros
  to 280 (the COB trailer's shape: count, 7 of filler, total).

A file whose header or trailer is wrong is refused whole (:class:`InvalidFacFile`); one
whose trailer is in the layout an earlier reading of the network's page had (the total at
24-39, no filler) is refused with a message that says so. A detail record that cannot be
read is rejected alone (with its line and reason, as PMC's rejection file lists them) and
the rest imported. Our reading of the fillers: zeros, or spaces (a writer padding with
blanks); anything else there rejects the record (a ticket message at 99 is the old layout).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from adapter.files import fixed_width
from adapter.text import ascii_digits, control_character
from adapter.domain.model import Currency, DueDate, Invoice, Origin
from adapter.errors import ClientError, InvalidInvoice

RECORD_LENGTH = 280
ENCODING = "latin-1"
LINE_END = "\r\n"
CODE = "400"
DETAIL = "5"  # the first character of a detail record
CURRENCIES = {"0": Currency.ARS, "1": Currency.USD}
CURRENCY_CODES = {currency: code for code, currency in CURRENCIES.items()}
DUE_GROUPS = 3
GROUP = 19  # YYYYMMDD + 11 digits
NO_DATE = "00000000"
MAX_AMOUNT = Decimal("999999999.99")  # 11 digits, 2 implied decimals
# past this many rejected records a file is refused whole: that many is another layout,
# not a few bad lines (and the rejections kept stay bounded)
MAX_REJECTED = 10_000


@dataclass(frozen=True)
class _Field:
    name: str
    start: int  # 0-based
    length: int

    @property
    def end(self) -> int:
        return self.start + self.length

    def of(self, record: str) -> str:
        return record[self.start:self.end]

    def where(self) -> str:
        """1-based positions, as the layout's table gives them."""
        return f"{self.start + 1}-{self.end}"


# detail record
CUSTOMER = _Field("client ID", 1, 19)
INVOICE = _Field("invoice ID", 20, 20)
CURRENCY = _Field("currency", 40, 1)
DUE = _Field("due dates", 41, DUE_GROUPS * GROUP)
DETAIL_FILLER = _Field("filler", 98, 19)
REFERENCE = _Field("client reference", 117, 19)
TICKET = _Field("ticket message", 136, 40)
SCREEN = _Field("screen message", 176, 15)
BARCODE = _Field("barcode", 191, 60)
DETAIL_END_FILLER = _Field("filler", 251, 29)
FIRST_AMOUNT = _Field("first amount", 41 + 8, 11)
# trailer
COUNT = _Field("count", 16, 7)
TRAILER_FILLER = _Field("filler", 23, 7)
TOTAL = _Field("total", 30, 16)
OLD_TOTAL = _Field("total", 23, 16)  # where the earlier, wrong reading had it


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


def _blank(text: str) -> bool:
    """A filler as we read it: zeros or spaces."""
    return not text.strip("0 ")


def _detail(record: str, biller_id: str) -> Invoice:
    customer, invoice_id = CUSTOMER.of(record).rstrip(" "), INVOICE.of(record).rstrip(" ")
    if not customer.strip() or not invoice_id.strip():
        raise ValueError("client ID and invoice ID are required")
    ticket, screen = TICKET.of(record).rstrip(" "), SCREEN.of(record).rstrip(" ")
    for field, value in ((CUSTOMER, customer), (INVOICE, invoice_id),
                         (REFERENCE, REFERENCE.of(record)), (TICKET, ticket),
                         (SCREEN, screen), (BARCODE, BARCODE.of(record))):
        control = control_character(value)
        if control is not None:
            raise ValueError(f"the {field.name} holds the control character {control}")
    for filler in (DETAIL_FILLER, DETAIL_END_FILLER):
        if not _blank(filler.of(record)):
            raise ValueError(f"positions {filler.where()} are zeros in the network's layout, "
                             f"not {filler.of(record).rstrip()!r} (a ticket message at 99 is "
                             "the old layout: it is at 137)")
    if CURRENCY.of(record) not in CURRENCIES:
        raise ValueError(f"currency {CURRENCY.of(record)!r} is neither 0 (pesos) nor "
                         "1 (dollars)")
    due_dates = []
    for group in range(DUE_GROUPS):
        start = DUE.start + group * GROUP
        on, amount = record[start:start + 8], record[start + 8:start + GROUP]
        if on == NO_DATE:
            if amount.strip("0"):
                raise ValueError(f"due date {group + 1} has an amount but no date")
            continue
        due_dates.append(DueDate(_day(on), _cents(amount)))
    return Invoice(biller_id, customer, invoice_id, CURRENCIES[CURRENCY.of(record)],
                   tuple(due_dates), Origin.BILLING_BASE, ticket_message=ticket,
                   screen_message=screen)


def _records(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(line number, record): line endings (CRLF or LF) off, empty lines at the end
    dropped."""
    empty = []
    for number, line in enumerate(lines, start=1):
        record = line.rstrip("\r\n")
        if not record:
            empty.append(number)
            continue
        if empty:
            raise InvalidFacFile(f"line {empty[0]}: an empty line inside the file")
        yield number, record


def file_lines(path: str | os.PathLike) -> Iterator[str]:
    """The records of the FAC file at ``path``, one at a time (see
    :func:`adapter.files.fixed_width.lines`: a line far longer than a record is refused without
    being read whole)."""
    with open(path, "rb") as handle:
        for _, record in fixed_width.lines(handle, RECORD_LENGTH, InvalidFacFile, ENCODING):
            yield record


def _check_length(number: int, record: str) -> None:
    if len(record) != RECORD_LENGTH:
        raise InvalidFacFile(f"line {number}: records are {RECORD_LENGTH} characters, "
                             f"not {len(record)}")


def _check_trailer(number: int, record: str, biller_id: str, day: str, count: int,
                   total: Decimal) -> None:
    if record[:4] != "9" + CODE:
        raise InvalidFacFile(f"line {number}: the trailer starts with 9400")
    if record[4:8] != biller_id or record[8:16] != day:
        raise InvalidFacFile(f"line {number}: the trailer's biller or date differs from the "
                             "header's")
    declared = COUNT.of(record)
    if not ascii_digits(declared) or int(declared) != count:
        raise InvalidFacFile(f"line {number}: the trailer counts {declared!r} records; "
                             f"the file has {count}")
    in_layout = TRAILER_FILLER.of(record) == "0" * TRAILER_FILLER.length and \
        ascii_digits(TOTAL.of(record)) and _cents(TOTAL.of(record)) == total
    if in_layout:
        return
    old = OLD_TOTAL.of(record)
    if ascii_digits(old) and _cents(old) == total and not record[OLD_TOTAL.end:].strip("0"):
        raise InvalidFacFile(
            f"line {number}: the trailer is in the old layout (the total at positions "
            f"{OLD_TOTAL.where()}, no filler); the network's trailer has 7 zeros at "
            f"{TRAILER_FILLER.where()} and the total at {TOTAL.where()}: write the file "
            "again in that layout")
    raise InvalidFacFile(f"line {number}: the trailer's total {TOTAL.of(record)!r} (with "
                         f"{TRAILER_FILLER.of(record)!r} before it, zeros in the layout) is "
                         f"not the sum of the records' first amounts, {total}")


class FacReader:
    """One streaming pass over a FAC file's lines: the header is read on creation
    (``biller_id``, ``day``; InvalidFacFile if it is wrong), the invoices as
    :meth:`invoices` is iterated, and the trailer checked once they are exhausted:
    InvalidFacFile then, after every invoice was yielded, if the file cannot be trusted
    as a whole (so store what it yields in one transaction, rolled back on that error).
    Only the rejected records are kept (at most MAX_REJECTED)."""

    def __init__(self, lines: Iterable[str]):
        self._lines = lines
        self._records = _records(lines)
        first = next(self._records, None)
        if first is None:
            raise InvalidFacFile("the file is empty: a FAC file has at least a header and "
                                 "a trailer")
        number, header = first
        _check_length(number, header)
        if header[:4] != "0" + CODE:
            raise InvalidFacFile("line 1: the header starts with 0400")
        self.biller_id = header[4:8]
        if not ascii_digits(self.biller_id):
            raise InvalidFacFile(f"line 1: the header's biller {self.biller_id!r} is not "
                                 "4 digits")
        self._date = header[8:16]
        try:
            self.day = _day(self._date)
        except ValueError:
            raise InvalidFacFile(f"line 1: file date {self._date!r} is not "
                                 "YYYYMMDD") from None
        self.rejected: list[Rejected] = []
        self.records = 0  # detail records, rejected ones included (once iterated)
        self.total = Decimal("0.00")  # their first amounts

    def close(self) -> None:
        """Read no further (a file's lines: the file closed)."""
        self._records.close()
        close = getattr(self._lines, "close", None)
        if close is not None:
            close()

    def invoices(self) -> Iterator[Invoice]:
        trailer = None
        for number, record in self._records:
            if trailer is not None:
                raise InvalidFacFile(f"line {number}: a record after the trailer (line "
                                     f"{trailer[0]})")
            _check_length(number, record)
            if record[0] == "9":
                trailer = number, record
                continue
            self.records += 1
            try:
                if record[0] != DETAIL:
                    raise ValueError("not a detail record (type 5)")
                self.total += _cents(FIRST_AMOUNT.of(record))
                invoice = _detail(record, self.biller_id)
            except (ValueError, InvalidInvoice) as error:
                self.rejected.append(Rejected(number, str(error)))
                if len(self.rejected) > MAX_REJECTED:
                    raise InvalidFacFile(f"line {number}: more than {MAX_REJECTED} records "
                                         "rejected; the file is not in the layout this "
                                         "reader knows") from None
                continue
            yield invoice
        if trailer is None:
            raise InvalidFacFile("no trailer: a FAC file ends with a record of type 9 (a "
                                 "header and a trailer at least)")
        _check_trailer(*trailer, self.biller_id, self._date, self.records, self.total)


def read_fac(lines: Iterable[str]) -> FacFile:
    """Read a FAC file from its lines (text, latin-1 decoded), whole; raises
    InvalidFacFile when it cannot be trusted as a whole."""
    reader = FacReader(lines)
    invoices = tuple(reader.invoices())
    return FacFile(reader.biller_id, reader.day, invoices, tuple(reader.rejected))


def parse_fac(text: str) -> FacFile:
    """Read a FAC file's whole text (see :func:`read_fac`)."""
    return read_fac(text.splitlines(keepends=True) if text else [])


def _fitting(field: _Field, value: str) -> str:
    if len(value) > field.length:
        raise ValueError(f"the {field.name} {value[:40]!r} is longer than its "
                         f"{field.length} characters")
    return value.ljust(field.length)


def detail_record(invoice: Invoice, barcode: str = "") -> str:
    """The detail record of one invoice, without its line ending (what
    :func:`adapter.domain.billing_base.fingerprint` digests: what the network reads of it)."""
    groups = []
    for due in invoice.due_dates:
        if due.amount > MAX_AMOUNT:
            raise ValueError(f"invoice {invoice.invoice_id}: {due.amount} does not fit in "
                             "11 digits")
        groups.append(f"{due.on:%Y%m%d}{int(due.amount * 100):011d}")
    return (f"{DETAIL}{_fitting(CUSTOMER, invoice.customer_id)}"
            f"{_fitting(INVOICE, invoice.invoice_id)}"
            f"{CURRENCY_CODES[invoice.currency]}"
            f"{''.join(groups).ljust(DUE.length, '0')}"
            f"{'0' * DETAIL_FILLER.length}"
            f"{_fitting(REFERENCE, invoice.customer_id)}"
            f"{_fitting(TICKET, invoice.ticket_message)}"
            f"{_fitting(SCREEN, invoice.screen_message)}"
            f"{_fitting(BARCODE, barcode)}"
            f"{'0' * DETAIL_END_FILLER.length}")


def header_record(biller_id: str, day: date) -> str:
    return f"0{CODE}{biller_id}{day:%Y%m%d}".ljust(RECORD_LENGTH, "0")


def trailer_record(biller_id: str, day: date, count: int, total: Decimal) -> str:
    """The trailer of a file of ``count`` detail records whose first amounts sum ``total``."""
    if count >= 10 ** COUNT.length or int(total * 100) >= 10 ** TOTAL.length:
        raise ValueError(f"{count} records totalling {total} do not fit in a FAC trailer "
                         f"({COUNT.length} digits of count, {TOTAL.length} of total)")
    return (f"9{CODE}{biller_id}{day:%Y%m%d}{count:0{COUNT.length}d}"
            f"{'0' * TRAILER_FILLER.length}{int(total * 100):0{TOTAL.length}d}"
            ).ljust(RECORD_LENGTH, "0")


def fac_records(biller_id: str, day: date, invoices: Iterable[Invoice],
                barcode: str = "") -> Iterator[str]:
    """The records of a FAC file for these invoices, one at a time (a billing base of a
    million invoices is written with flat memory), without line endings: the trailer's
    count and total are those of the invoices iterated."""
    yield header_record(biller_id, day)
    count, total = 0, Decimal("0.00")
    for invoice in invoices:
        record = detail_record(invoice, barcode)
        count += 1
        total += invoice.due_dates[0].amount
        yield record
    yield trailer_record(biller_id, day, count, total)


def format_fac(biller_id: str, day: date, invoices: Iterable[Invoice],
               barcode: str = "") -> str:
    """A FAC file's text for these invoices, CRLF line endings (see :func:`fac_records`)."""
    return "".join(record + LINE_END for record in fac_records(biller_id, day, invoices,
                                                               barcode))


@dataclass(frozen=True)
class RejectedRecord:
    """A line of a rejection file that is a FAC detail record: the invoice it names, and
    the reason that follows the record, if any."""

    customer_id: str
    invoice_id: str
    reason: str | None


def rejected_records(content: bytes) -> list[RejectedRecord]:
    """The lines of a rejection file (``RECHAZADO_FACnnnn.DDMMAA.N``) that are FAC detail
    records: a ``5``, a client ID (2-20) and an invoice ID (21-40), the reason whatever
    follows the record's 280 characters. The layout of these files is not public: this
    reading is the product's (the manual says so); lines of any other shape are not
    records and name no invoice."""
    found = []
    for line in content.decode(ENCODING).splitlines():
        if len(line) < INVOICE.end + 1 or line[0] != DETAIL:
            continue
        customer, invoice = CUSTOMER.of(line).rstrip(), INVOICE.of(line).rstrip()
        if not customer or not invoice or customer != CUSTOMER.of(line).strip() \
                or invoice != INVOICE.of(line).strip():
            continue
        found.append(RejectedRecord(customer, invoice,
                                    line[RECORD_LENGTH:].strip()[:200] or None))
    return found
