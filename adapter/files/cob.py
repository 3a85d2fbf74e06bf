"""The payment report file ("COB", "rendición"): fixed-width records of 100 characters.

All knowledge of the format lives here (the manual: docs/operations.rst, "Closing the
day"). A file ``COBnnnn.DDMMAA`` (``DDMMAA`` the day the funds reach the biller) holds,
latin-1, one record a line, lines ending in CRLF or LF:

* a header: ``0``, ``400``, the biller number (4), the file date ``YYYYMMDD``;
* detail records, one per payment: ``5``, client ID (19, left-aligned), invoice ID (20),
  due date, one character of unknown meaning, payment date, amount (11 digits, 2 implied
  decimals), movement code (``1`` without invoice, ``2`` with invoice), the date the
  funds are credited, channel (2), control number (4), filler;
* a trailer: ``9``, ``400``, the biller number, a date, the number of detail records (7),
  filler (7), the total of their amounts (11 digits, 2 implied decimals).

The report is the settlement truth, so a file is refused whole (:class:`InvalidCobFile`)
as soon as it cannot be trusted as a whole: wrong header or trailer, a record that is not
100 characters, counts or totals that do not add up. A detail record whose fields cannot
be read but whose amount can is rejected alone (:class:`RejectedLine`, with its line and
field) and the rest imported: its money is in the trailer's total all the same.

Files run to a million lines: both passes stream, line by line, and never hold more than
one record (and, for :func:`check_cob`, the rejected lines) in memory. Each pass digests
the records it read (SHA-256 of the records without their line endings): the file's
identity, the same whether its lines end in CRLF or LF, and the proof that the second
pass read what the first one checked (:func:`read_cob` refuses a file that changed). The fields
whose meaning is inferred, not published (the unknown character, the movement code), are kept
raw and never validated.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from adapter.files import fixed_width
from adapter.text import ascii_digits, control_character
from adapter.errors import ClientError

RECORD_LENGTH = 100
ENCODING = "latin-1"
CODE = "400"
# [0-9], not \d: \d takes any script's digits
# the network's FTPS server may list a name in lower case (cob1234.071226): either is read
NAME = re.compile(r"(?:COB|cob)([0-9]{4})\.([0-9]{2})([0-9]{2})([0-9]{2})")
# check_cob keeps the rejected lines for its summary; past this many the file is refused
# whole instead: that many unreadable records is a changed format, not a few bad lines,
# and the summary's memory stays bounded.
MAX_REJECTED = 10_000
_DATE_FIELDS = (("due date", 40), ("payment date", 49), ("credit date", 69))  # 0-based


class InvalidCobFile(ClientError):
    fault_code = "Client.InvalidCobFile"


@dataclass(frozen=True, slots=True)
class CobName:
    biller_id: str
    day: date  # when the funds reach the biller, not the header's date


@dataclass(frozen=True, slots=True)
class CobLine:
    line: int
    customer_id: str
    invoice_id: str
    due_on: date
    flag: str  # position 49, meaning unknown: kept raw
    paid_on: date
    amount: Decimal
    movement: str  # "1" payment without invoice, "2" with invoice; others kept raw
    credited_on: date
    channel: str
    control: str

    @property
    def identity(self) -> tuple[str, str, str, date]:
        """The line's identity within a biller: the report carries no operation ID. Public
        integrations dedupe on channel + control number + invoice ID; the payment date is
        added because control numbers have only 4 characters and repeat across days."""
        return (self.channel, self.control, self.invoice_id, self.paid_on)


@dataclass(frozen=True, slots=True)
class RejectedLine:
    line: int
    field: str  # "customer ID", "invoice ID", "due date", "payment date", "credit date",
    #             "channel" or "control number"
    reason: str


@dataclass(frozen=True, slots=True)
class CobSummary:
    biller_id: str
    day: date  # the header's date
    records: int  # detail records, rejected ones included
    total: Decimal  # their amounts, rejected ones included
    rejected: tuple[RejectedLine, ...]
    sha256: str  # of the records, without their line endings (the file's identity)


def parse_cob_name(name: str) -> CobName:
    """``COBnnnn.DDMMAA`` (or ``cobnnnn.DDMMAA``; a file name, not a path) as its biller
    and day (year 20AA)."""
    match = NAME.fullmatch(name)
    if not match:
        raise InvalidCobFile(f"file name {name!r} is not COBnnnn.DDMMAA")
    biller_id, day, month, year = match.groups()
    on = fixed_width.day(f"20{year}{month}{day}")
    if on is None:
        raise InvalidCobFile(f"file name {name!r}: {day}/{month}/{year} is not a date")
    return CobName(biller_id, on)


def check_cob(path: str | os.PathLike, name: str | None = None) -> CobSummary:
    """Pass 1: every whole-file check, streaming; raises InvalidCobFile at the first that fails.

    Refused: an empty file; a first record that is not a header (``0``, ``400``, a 4-digit
    biller, a date); a line that is not 100 characters once its line ending is removed; a
    record type other than 0, 5 or 9; a second header; a record after the trailer; no
    trailer; a trailer without ``400``, or whose biller differs from the header's, or whose
    count or total is not the detail records'. A detail record whose amount is not 11
    digits refuses the file too, since the trailer's total can no longer be checked; and so
    do more than MAX_REJECTED rejected lines. Empty lines after the trailer are ignored.

    ``name`` is the file's name as the network published it: when given, it must be
    ``COBnnnn.DDMMAA`` and name the header's biller. When not, the path's basename is
    checked the same way only if it has that form (a file renamed after download is still
    read). The name's date is not compared with the header's: it is the day the funds
    arrive, not the file's date.
    """
    rejected = []
    with _Pass(path) as report:
        _check_name(path, name, report.biller_id)
        for outcome in report.details(build=False):
            if outcome is not None:
                rejected.append(outcome)
                if len(rejected) > MAX_REJECTED:
                    raise InvalidCobFile(f"line {outcome.line}: more than {MAX_REJECTED} "
                                         "detail records rejected; the format is not the "
                                         "one this reader knows")
        return CobSummary(report.biller_id, report.day, report.records, report.total,
                          tuple(rejected), report.sha256())


def read_cob(path: str | os.PathLike, checked: str | None = None,
             name: str | None = None) -> Iterator[CobLine | RejectedLine]:
    """Pass 2: the detail records in file order, streaming, each read or rejected.

    Run check_cob first: this pass makes the same checks as it goes, so on a file that
    check_cob refuses it raises InvalidCobFile too, but only when it reaches the fault,
    which may be the trailer, after every line was yielded. With ``checked`` (pass 1's
    CobSummary.sha256), it raises InvalidCobFile at the end, after every line was
    yielded, if these are not the records pass 1 checked: write nothing of them.
    """
    with _Pass(path) as report:
        _check_name(path, name, report.biller_id)  # as pass 1 did
        yield from report.details()
        if checked is not None and report.sha256() != checked:
            raise InvalidCobFile("the file changed between its check and its import")


class _Pass:
    """One streaming pass over a file: the header is read on opening, the details as
    iterated, and the trailer checked once they are exhausted (records and total are then
    the file's)."""

    def __init__(self, path: str | os.PathLike):
        self._handle = open(path, "rb")
        self._digest = hashlib.sha256()
        try:
            self._lines = fixed_width.lines(self._handle, RECORD_LENGTH, InvalidCobFile,
                                            ENCODING, self._digest)
            self.biller_id, self.day = _header(next(self._lines, None))
        except BaseException:
            self._handle.close()
            raise
        self.records = 0
        self.total = Decimal("0.00")

    def __enter__(self) -> _Pass:
        return self

    def __exit__(self, *exc_info) -> None:
        self._handle.close()

    def sha256(self) -> str:
        """The digest of the records read so far (all of them, once details() is done)."""
        return self._digest.hexdigest()

    def details(self, build: bool = True) -> Iterator[CobLine | RejectedLine | None]:
        """Each detail record's CobLine or RejectedLine; with ``build`` false, None instead
        of each CobLine (pass 1 needs only the rejections, and is quicker without them)."""
        cents = 0
        number, trailer = 1, None
        for number, record in self._lines:
            if trailer is not None:
                if record:
                    raise InvalidCobFile(f"line {number}: a record after the trailer "
                                         f"(line {trailer})")
                continue
            _check_length(number, record)
            kind = record[0]
            if kind == "5":
                amount = record[57:68]
                if not ascii_digits(amount):
                    raise InvalidCobFile(f"line {number}: amount {amount!r} is not 11 digits, "
                                         "so the trailer's total cannot be checked")
                self.records += 1
                cents += int(amount)
                yield _detail(number, record, amount, build)
            elif kind == "9":
                self._check_trailer(number, record, cents)
                trailer = number
            elif kind == "0":
                raise InvalidCobFile(f"line {number}: a second header")
            else:
                raise InvalidCobFile(f"line {number}: record type {kind!r} is not 0 (header), "
                                     "5 (detail) or 9 (trailer)")
        if trailer is None:
            raise InvalidCobFile(f"no trailer: the file ends at line {number} without a "
                                 "record of type 9 (cut short?)")

    def _check_trailer(self, number: int, record: str, cents: int) -> None:
        if record[1:4] != CODE:
            raise InvalidCobFile(f"line {number}: the trailer's code is {record[1:4]!r}, "
                                 f"not {CODE!r}")
        if record[4:8] != self.biller_id:
            raise InvalidCobFile(f"line {number}: the trailer's biller {record[4:8]!r} "
                                 f"differs from the header's {self.biller_id!r}")
        count, total = record[16:23], record[30:41]
        if not ascii_digits(count) or int(count) != self.records:
            raise InvalidCobFile(f"line {number}: the trailer counts {count!r} detail "
                                 f"records; the file has {self.records}")
        self.total = fixed_width.cents(f"{cents:03d}")
        if not ascii_digits(total) or int(total) != cents:
            raise InvalidCobFile(f"line {number}: the trailer's total {total!r} is not the "
                                 f"sum of the detail amounts, {self.total}")


def _check_length(number: int, record: str) -> None:
    if len(record) != RECORD_LENGTH:
        raise InvalidCobFile(f"line {number}: records are {RECORD_LENGTH} characters, "
                             f"not {len(record)}")


def _check_name(path: str | os.PathLike, name: str | None, biller_id: str) -> None:
    """The file's name (``name``, else the path's basename if it has the network's form)
    must name the header's biller."""
    if name is not None:
        expected = parse_cob_name(name)
    else:
        basename = os.path.basename(os.fspath(path))
        expected = parse_cob_name(basename) if NAME.fullmatch(basename) else None
    if expected is not None and expected.biller_id != biller_id:
        raise InvalidCobFile(f"the file name's biller {expected.biller_id} differs from "
                             f"the header's {biller_id}")


def _header(first: tuple[int, str] | None) -> tuple[str, date]:
    if first is None:
        raise InvalidCobFile("the file is empty")
    number, record = first
    _check_length(number, record)
    if record[0] != "0":
        raise InvalidCobFile(f"line 1: the first record is not a header (type {record[0]!r}, "
                             "not '0')")
    if record[1:4] != CODE:
        raise InvalidCobFile(f"line 1: the header's code is {record[1:4]!r}, not {CODE!r}")
    biller_id = record[4:8]
    if not ascii_digits(biller_id):
        raise InvalidCobFile(f"line 1: the header's biller {biller_id!r} is not 4 digits")
    day = fixed_width.day(record[8:16])
    if day is None:
        raise InvalidCobFile(f"line 1: the header's date {record[8:16]!r} is not YYYYMMDD")
    return biller_id, day


def _detail(number: int, record: str, amount: str, build: bool) -> CobLine | RejectedLine | None:
    """A detail record whose amount is known to be digits, read (when ``build``) or rejected
    on its first unreadable field."""
    customer_id = record[1:20].rstrip(" ")
    if not customer_id:
        return RejectedLine(number, "customer ID", "the customer ID is blank")
    invoice_id = record[20:40].rstrip(" ")
    if not invoice_id:
        return RejectedLine(number, "invoice ID", "the invoice ID is blank")
    for field, value in (("customer ID", customer_id), ("invoice ID", invoice_id),
                         ("channel", record[77:79]), ("control number", record[79:83])):
        control = control_character(value)
        if control is not None:
            return RejectedLine(number, field, f"the {field} holds the control character "
                                               f"{control}")
    due_on, paid_on, credited_on = dates = (fixed_width.day(record[40:48]), fixed_width.day(record[49:57]),
                                            fixed_width.day(record[69:77]))
    if None in dates:
        field, start = _DATE_FIELDS[dates.index(None)]
        return RejectedLine(number, field, f"{field} {record[start:start + 8]!r} is not a "
                                           "YYYYMMDD date")
    channel, control = record[77:79], record[79:83]
    if " " in channel:
        return RejectedLine(number, "channel",
                            f"channel {channel!r} is not two non-blank characters")
    if not control.strip(" "):
        return RejectedLine(number, "control number", "the control number is blank")
    if not build:
        return None
    return CobLine(number, customer_id, invoice_id, due_on, record[48], paid_on,
                   fixed_width.cents(amount), record[68], credited_on, channel, control)
