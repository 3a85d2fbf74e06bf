"""The network's FTPS server: the payment reports (``COBnnnn.DDMMAA``) and rejection
files fetched from ``Download/``, the billing base files (``FACnnnn.DDMMAA.N``) uploaded
to ``Upload/`` -- one account, both directions.

Every business day the network publishes the biller's report in the biller's
``Download/`` folder, between 19:30 and 22:00: a report not there yet is normal,
not an error. The server speaks FTP over TLS, implicit (TLS from the first byte,
port 990) or explicit (``AUTH TLS`` on port 21). Either way the server's
certificate is verified (chain and host name), the control and the data
connections are encrypted (``PROT P``) and every data connection resumes the
control connection's TLS session, which servers such as vsftpd
(``require_ssl_reuse``) demand to be sure the data connection comes from the
client that logged in.

A report is downloaded under a temporary name in the destination folder and
renamed once complete, so that a report that looks complete is complete; a billing
base file is uploaded the same way (under a hidden temporary name, its size checked,
then renamed), so that the network never reads half a file. Failures to connect, log
in, negotiate TLS or transfer raise :class:`FetchError`.
"""
from __future__ import annotations

import contextlib
import ftplib
import logging
import os
import re
import socket
import ssl
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

from adapter.files.cob import InvalidCobFile, parse_cob_name
from adapter.config import FtpsSettings
from adapter.errors import AdapterError

log = logging.getLogger(__name__)

class FetchError(AdapterError):
    """Connecting to, logging in to, or downloading from the network's FTPS server failed.

    The message names the server and the step that failed, never the password.
    ``downloaded`` holds the reports downloaded, complete, before the failure.
    """

    def __init__(self, message: str, downloaded: Iterable[Path] = ()):
        super().__init__(message)
        self.downloaded = tuple(downloaded)


def report_name(biller_id: str, day: date) -> str:
    """``COBnnnn.DDMMAA``: the report of the funds that reach the biller on ``day``."""
    return f"COB{_checked(biller_id)}.{day:%d%m%y}"


def report_day(name: str, biller_id: str) -> date | None:
    """The day of a report of ``biller_id`` named ``name``; None for any other name."""
    try:
        parsed = parse_cob_name(name)
    except InvalidCobFile:  # another file, or six digits that are no date
        return None
    return parsed.day if parsed.biller_id == _checked(biller_id) else None


def list_reports(options: FtpsSettings, biller_id: str) -> list[str]:
    """The names of ``biller_id``'s reports in the folder, oldest day first (as the server
    lists them: ``COBnnnn.DDMMAA`` or ``cobnnnn.DDMMAA``)."""
    _checked(biller_id)
    with _session(options) as ftp:
        return [name for _, name in _reports(ftp, biller_id)]


def fetch_reports(options: FtpsSettings, biller_id: str, days: Iterable[date],
                  destination: Path, already: Callable[[str], bool]) -> list[Path]:
    """Download COB{biller}.{DDMMAA} for each day in `days` that is on the server and for
    which already(name) is False; a day without a file is skipped (logged at info), not an
    error. Downloads to a temporary name in `destination` and renames when complete (a
    half-downloaded file never looks complete). Returns the paths downloaded, oldest day
    first."""
    destination = Path(destination)
    if not destination.is_dir():
        raise NotADirectoryError(f"no folder {destination} to download the reports to")
    wanted = [(day, report_name(biller_id, day)) for day in sorted(set(days))]
    wanted = [(day, name) for day, name in wanted if not already(name)]
    downloaded: list[Path] = []
    if not wanted:
        return downloaded
    try:
        with _session(options) as ftp:
            # the day's report as the server lists it (COB1234.071226 or cob1234.071226)
            present: dict[date, str] = {}
            for day, listed in _reports(ftp, biller_id):
                present.setdefault(day, listed)
            for day, name in wanted:
                if day not in present:
                    log.info("%s is not on %s yet", name, options.address)
                    continue
                downloaded.append(_download(ftp, present[day], destination, name))
    except FetchError as error:
        error.downloaded = tuple(downloaded)
        raise
    return downloaded


def fetch_named(options: FtpsSettings, names: Iterable[str], limit: int) -> dict[str, bytes]:
    """The content of each file of ``names`` in the folder (listed in any case), read
    into memory (rejection files are small); a file larger than ``limit`` bytes is
    refused. Names not there are simply not in the answer."""
    wanted = {name.lower(): name for name in names}
    found: dict[str, bytes] = {}
    if not wanted:
        return found
    with _session(options) as ftp:
        listed = _listing(ftp)
        for entry in listed:
            name = wanted.get(entry.lower())
            if name is None or name in found:
                continue
            ftp.doing = f"downloading {entry}"
            size = _size(ftp, entry)
            if size is not None and size > limit:
                raise ftplib.error_proto(f"{entry} is {size} bytes, more than the {limit} "
                                         "a rejection file may have")
            chunks: list[bytes] = []
            received = 0

            def keep(chunk: bytes) -> None:
                nonlocal received
                received += len(chunk)
                if received > limit:
                    raise ftplib.error_proto(f"{entry} is more than the {limit} bytes a "
                                             "rejection file may have")
                chunks.append(chunk)
            ftp.retrbinary(f"RETR {entry}", keep)
            if size is not None and received != size:
                raise ftplib.error_proto(f"received {received} of its {size} bytes")
            found[name] = b"".join(chunks)
    return found


def upload(options: FtpsSettings, path: Path, name: str,
           progress: Callable[[int], None] = lambda sent: None) -> None:
    """Upload the file at ``path`` to the folder as ``name``: under a hidden temporary
    name first, its size on the server checked, then renamed, so that a file under its
    name is always whole. ``progress`` is told the bytes sent so far, block by block."""
    partial = f".{name}.part"
    size = Path(path).stat().st_size
    with _session(options) as ftp, open(path, "rb") as source:
        ftp.doing = f"uploading {name}"
        sent = 0

        def block(chunk: bytes) -> None:
            nonlocal sent
            sent += len(chunk)
            progress(sent)
        ftp.storbinary(f"STOR {partial}", source, blocksize=64 * 1024, callback=block)
        stored = _size(ftp, partial)
        if stored is not None and stored != size:
            with contextlib.suppress(*ftplib.all_errors):
                ftp.delete(partial)
            raise ftplib.error_proto(f"the server holds {stored} of its {size} bytes")
        ftp.doing = f"renaming {partial} to {name}"
        ftp.rename(partial, name)
    log.info("uploaded %s to %s (%d bytes)", name, options.address, size)


class Account:
    """One biller's account: billing base files up to its upload folder, rejection files
    down from its download folder (what :mod:`adapter.service.uploading` asks of it)."""

    def __init__(self, options: FtpsSettings):
        self.options = options

    def upload(self, path: Path, name: str, progress: Callable[[int], None]) -> None:
        upload(replace(self.options, folder=self.options.upload_folder), path, name, progress)

    def fetch(self, names: Iterable[str], limit: int) -> dict[str, bytes]:
        return fetch_named(self.options, names, limit)


def probe(options: FtpsSettings) -> str:
    """Log in and open both folders (what ``check-config`` checks): a FetchError says
    which step failed."""
    for folder in (options.folder, options.upload_folder):
        with _session(replace(options, folder=folder)):
            pass
    return f"logged in as {options.username!r}; {options.folder!r} and " \
           f"{options.upload_folder!r} open"


# -- the FTPS client ------------------------------------------------------------------

class _TlsSocket(ssl.SSLSocket):
    """ftplib ends each transfer by closing the data connection's TLS layer (``unwrap``),
    which fails ("shutdown while in init") when the server closed the connection without
    TLS's close_notify: some servers do, and pyftpdlib does now and then after an empty
    listing. A failed TLS goodbye is no failed transfer: the server's reply on the control
    connection judges the transfer (and, for a report, its size: see :func:`_download`)."""

    def unwrap(self):
        try:
            return super().unwrap()
        except OSError as error:
            log.debug("closing TLS on a data connection failed: %s", error)
            return None


class _Client(ftplib.FTP_TLS):
    """``ftplib.FTP_TLS`` whose data connections are always TLS and resume the control
    connection's TLS session (ftplib's own start a new one, which servers that demand
    session reuse refuse). ``doing`` names the step under way, for the error message."""

    doing = "connecting"

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        try:
            conn = self.context.wrap_socket(conn, server_hostname=self.host,
                                            session=self.sock.session)
        except BaseException:
            conn.close()
            raise
        return conn, size


class _ImplicitClient(_Client):
    """Implicit TLS: the handshake comes first, before the server's greeting."""

    def connect(self, host, port, timeout):
        self.host, self.port, self.timeout = host, port, timeout
        sys.audit("ftplib.connect", self, self.host, self.port)
        plain = socket.create_connection((host, port), timeout)
        try:
            self.sock = self.context.wrap_socket(plain, server_hostname=host)
        except BaseException:
            plain.close()
            raise
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome


@contextlib.contextmanager
def _session(options: FtpsSettings) -> Iterator[_Client]:
    """A logged-in client in ``options.folder``, its data connections private, closed on
    leaving. Any failure, setting up or inside the ``with`` block, becomes a :class:`FetchError`."""
    context = ssl.create_default_context(cafile=options.ca_file)  # verifies chain and name
    context.sslsocket_class = _TlsSocket
    implicit = options.tls == "implicit"
    ftp = (_ImplicitClient if implicit else _Client)(context=context, timeout=options.timeout)
    try:
        ftp.doing = "connecting" + (" (implicit TLS)" if implicit else "")
        ftp.connect(options.host, options.port, options.timeout)
        if not implicit:
            ftp.doing = "securing the connection (AUTH TLS)"
            ftp.auth()
        ftp.doing = f"logging in as {options.username!r}"
        ftp.login(options.username, options.password)
        ftp.doing = "securing the data connections (PROT P)"
        ftp.prot_p()
        ftp.doing = f"opening the folder {options.folder!r}"
        ftp.cwd(options.folder)
        yield ftp
        with contextlib.suppress(*ftplib.all_errors):  # all done: a rude goodbye is no failure
            ftp.quit()
    except ftplib.all_errors as error:
        raise FetchError(f"FTPS {options.address}: {ftp.doing} failed: "
                         f"{_reason(error, options)}") from error
    finally:
        ftp.close()


def _reason(error: BaseException, options: FtpsSettings) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = f"the server's certificate is not trusted ({error.verify_message})"
    elif isinstance(error, EOFError):
        reason = "the server closed the connection"
    elif isinstance(error, TimeoutError):
        reason = f"no answer within {options.timeout:g} s"
    else:
        reason = str(error) or error.__class__.__name__
    if options.password:  # should a server ever echo it
        reason = reason.replace(options.password, "***")
    return reason


def _reports(ftp: _Client, biller_id: str) -> list[tuple[date, str]]:
    """(day, name) of ``biller_id``'s reports in the folder, oldest day first."""
    days = {}
    for name in _listing(ftp):
        day = report_day(name, biller_id)
        if day is not None:
            days[name] = day
    return sorted(((day, name) for name, day in days.items()), key=lambda pair: pair[0])


def _listing(ftp: _Client) -> list[str]:
    """The names in the folder."""
    ftp.doing = "listing the folder"
    try:
        listed = ftp.nlst()
    except ftplib.error_temp as error:
        if not str(error).startswith("450"):
            raise
        listed = []  # some servers answer an empty folder with "450 No files found"
    return [entry.rsplit("/", 1)[-1] for entry in listed]  # some servers list paths


def _download(ftp: _Client, name: str, destination: Path, local_name: str) -> Path:
    """``name`` from the server, saved as ``local_name`` (the report's name in capitals,
    whatever case the server lists it in)."""
    ftp.doing = f"downloading {name}"
    expected = _size(ftp, name)
    handle, partial = tempfile.mkstemp(dir=destination, prefix=f".{name}.", suffix=".part")
    try:
        with open(handle, "wb") as out:
            ftp.retrbinary(f"RETR {name}", out.write)
            received = out.tell()
            out.flush()
            os.fsync(out.fileno())
        if expected is not None and received != expected:
            # a connection cut cleanly mid-file still ends with a 226 from some servers
            raise ftplib.error_proto(f"received {received} of its {expected} bytes")
        complete = destination / local_name
        os.replace(partial, complete)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    log.info("downloaded %s from %s (%d bytes)", name, ftp.host, received)
    return complete


def _size(ftp: _Client, name: str) -> int | None:
    """The report's size as the server states it (SIZE, RFC 3659); None where the server
    does not say."""
    ftp.voidcmd("TYPE I")  # SIZE counts bytes in binary mode only; a listing sets ASCII
    try:
        return ftp.size(name)
    except ftplib.error_perm:
        return None


def _checked(biller_id: str) -> str:
    if not re.fullmatch(r"[0-9]{4}", biller_id):
        raise ValueError(f"a biller number is 4 digits, not {biller_id!r}")
    return biller_id
