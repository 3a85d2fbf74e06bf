"""Fetching COB reports from a real FTPS server on loopback (pyftpdlib, in a thread), in
implicit and explicit TLS, with a throwaway CA.

The server is as strict as the network's should be: TLS required on the control and the
data connections, and every data connection must resume the control connection's TLS
session (vsftpd's ``require_ssl_reuse``; pyftpdlib itself does not ask for it).
pyftpdlib has no implicit TLS: :class:`ImplicitTlsHandler` adds it.
"""
from __future__ import annotations

import logging
import os
import socket
import traceback
from datetime import date, timedelta
from pathlib import Path

import pytest
from OpenSSL import SSL

from adapter.files.ftps import FetchError, fetch_reports, list_reports
from adapter.config import FtpsSettings
from support.data import free_port
from support.ftps import (PASSWORD, USER, FtpsServer, adapter_environment,  # noqa: F401
                          pki, serving)  # (pki: a fixture)

BILLER = "1234"
MONDAY = date(2024, 2, 5)
DAYS = [MONDAY + timedelta(days=offset) for offset in range(5)]


def cob(day: date, biller: str = BILLER) -> str:
    return f"COB{biller}.{day:%d%m%y}"


def report(day: date, details: int = 3, biller: str = BILLER) -> bytes:
    """A COB report's bytes: header, ``details`` detail records, trailer; CRLF."""
    records = [f"0400{biller}{day:%Y%m%d}".ljust(100, "0")]
    records += [f"5{'C' + str(n):<19}{'F' + str(n):<20}".ljust(100, "0") for n in range(details)]
    records.append(f"9400{biller}{day:%Y%m%d}{details:07d}".ljust(100, "0"))
    return "".join(record + "\r\n" for record in records).encode()


# -- the server ------------------------------------------------------------------------


@pytest.fixture(params=["implicit", "explicit"])
def server(request, pki, tmp_path):
    with serving(FtpsServer(tmp_path / "ftp", request.param, ca_file=pki["ca"]),
                 pki["server"]) as running:
        yield running


@pytest.fixture
def inbox(tmp_path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


def nothing_imported(name: str) -> bool:
    return False


# -- what is fetched ----------------------------------------------------------------------

def test_downloads_the_days_asked_for_not_yet_imported_oldest_first(server, inbox):
    published = {day: server.publish(cob(day), report(day, details=day.day)) for day in DAYS}
    imported = {cob(DAYS[1])}
    asked = [DAYS[3], DAYS[0], DAYS[1], DAYS[0]]  # any order, repeats allowed

    paths = fetch_reports(server.options(), BILLER, asked, inbox, imported.__contains__)

    assert paths == [inbox / cob(DAYS[0]), inbox / cob(DAYS[3])]
    assert [path.read_bytes() for path in paths] == [published[DAYS[0]], published[DAYS[3]]]
    assert sorted(os.listdir(inbox)) == sorted(path.name for path in paths)


def test_a_day_not_published_yet_is_skipped_and_logged(server, inbox, caplog):
    server.publish(cob(DAYS[0]), report(DAYS[0]))
    with caplog.at_level(logging.INFO, logger="adapter.files.ftps"):
        paths = fetch_reports(server.options(), BILLER, DAYS[:2], inbox, nothing_imported)
    assert paths == [inbox / cob(DAYS[0])]
    logged = [(record.levelno, record.getMessage()) for record in caplog.records
              if record.name == "adapter.files.ftps"]
    assert (logging.INFO, f"{cob(DAYS[1])} is not on 127.0.0.1:{server.port} yet") in logged


@pytest.mark.parametrize("empty_listing", ["226", "450"])
def test_nothing_published_is_no_error(server, inbox, empty_listing):
    server.empty_listing = empty_listing
    assert fetch_reports(server.options(), BILLER, DAYS, inbox, nothing_imported) == []
    assert list_reports(server.options(), BILLER) == []
    assert os.listdir(inbox) == []


def test_reports_of_other_billers_and_other_files_are_ignored(server, inbox):
    for stray in (cob(DAYS[0], "5678"), f"{cob(DAYS[0])}.bak", f"X{cob(DAYS[0])}",
                  f"COB{BILLER}.310224", f"COB{BILLER}.0602", f"COB{BILLER}.٠٦٠٢٢٤", "FAC1234.050224", "notes.txt"):
        server.publish(stray, b"not ours")
    server.publish(cob(DAYS[2]), report(DAYS[2]))
    server.publish(cob(DAYS[0]), report(DAYS[0]))

    assert list_reports(server.options(), BILLER) == [cob(DAYS[0]), cob(DAYS[2])]
    paths = fetch_reports(server.options(), "5678", DAYS, inbox, nothing_imported)
    assert paths == [inbox / cob(DAYS[0], "5678")] and paths[0].read_bytes() == b"not ours"


def test_a_report_listed_in_lower_case_is_fetched_and_kept_under_its_capitals(server, inbox):
    """The network's server may list cob1234.DDMMAA: it is listed and fetched like its
    capitals, saved as COB1234.DDMMAA (which is what "already imported" knows it by)."""
    published = server.publish(cob(DAYS[1]).lower(), report(DAYS[1]))
    server.publish(cob(DAYS[0]), report(DAYS[0]))
    assert list_reports(server.options(), BILLER) == [cob(DAYS[0]), cob(DAYS[1]).lower()]
    imported = {cob(DAYS[0])}
    paths = fetch_reports(server.options(), BILLER, DAYS[:2], inbox, imported.__contains__)
    assert paths == [inbox / cob(DAYS[1])] and paths[0].read_bytes() == published


# -- failures -----------------------------------------------------------------------------

def test_a_wrong_password_fails_without_showing_it(server, inbox):
    server.publish(cob(DAYS[0]), report(DAYS[0]))
    wrong = "wrong-" + PASSWORD
    with pytest.raises(FetchError) as failure:
        fetch_reports(server.options(password=wrong), BILLER, DAYS, inbox, nothing_imported)
    message = str(failure.value)
    assert f"127.0.0.1:{server.port}" in message and f"logging in as '{USER}'" in message
    assert "530" in message
    shown = "".join(traceback.format_exception(failure.value)) + repr(server.options())
    assert PASSWORD not in shown and wrong not in shown
    assert os.listdir(inbox) == []


def test_a_server_certificate_from_an_unknown_ca_is_refused(pki, tmp_path, inbox):
    impostor = FtpsServer(tmp_path / "ftp", "implicit", ca_file=pki["ca"])
    for tls in ("implicit", "explicit"):
        impostor.tls = tls
        with serving(impostor, pki["impostor"]):
            impostor.publish(cob(DAYS[0]), report(DAYS[0]))
            with pytest.raises(FetchError, match="certificate is not trusted"):
                fetch_reports(impostor.options(), BILLER, DAYS, inbox, nothing_imported)
            with pytest.raises(FetchError, match=f"127.0.0.1:{impostor.port}"):
                list_reports(impostor.options(), BILLER)
    assert os.listdir(inbox) == []


def test_the_server_name_is_checked_against_its_certificate(server, inbox):
    server.publish(cob(DAYS[0]), report(DAYS[0]))
    # the certificate names 127.0.0.1 only; "localhost" reaches the same server
    with pytest.raises(FetchError, match="certificate is not trusted.*(mismatch|match)"):
        fetch_reports(server.options(host="localhost"), BILLER, DAYS, inbox, nothing_imported)
    assert fetch_reports(server.options(), BILLER, DAYS, inbox, nothing_imported)


def test_a_silent_server_times_out(inbox):
    with socket.create_server(("127.0.0.1", 0)) as mute:  # accepts, never speaks
        options = FtpsSettings("127.0.0.1", mute.getsockname()[1], timeout=0.5)
        with pytest.raises(FetchError,
                           match=r"127\.0\.0\.1:\d+: connecting.*no answer within 0.5 s"):
            list_reports(options, BILLER)


def test_no_server_at_all_is_a_fetch_error():
    port = free_port()
    with pytest.raises(FetchError, match=f"127.0.0.1:{port}: connecting"):
        list_reports(FtpsSettings("127.0.0.1", port, tls="explicit", timeout=5), BILLER)


# -- complete files only --------------------------------------------------------------------

def test_a_connection_cut_mid_transfer_leaves_no_file_behind(server, inbox):
    first = server.publish(cob(DAYS[0]), report(DAYS[0]))
    server.publish(cob(DAYS[1]), report(DAYS[1], details=4000))  # 400 kB
    server.sabotage[cob(DAYS[1])] = "cut"

    with pytest.raises(FetchError, match=f"downloading {cob(DAYS[1])} failed") as failure:
        fetch_reports(server.options(), BILLER, DAYS[:2], inbox, nothing_imported)

    assert os.listdir(inbox) == [cob(DAYS[0])]  # no partial file, under any name
    assert failure.value.downloaded == (inbox / cob(DAYS[0]),)
    assert (inbox / cob(DAYS[0])).read_bytes() == first


def test_a_transfer_shorter_than_the_stated_size_is_not_kept(server, inbox):
    content = server.publish(cob(DAYS[0]), report(DAYS[0], details=4000))
    server.sabotage[cob(DAYS[0])] = "short"  # half the file, then "226 Transfer complete"

    with pytest.raises(FetchError, match=rf"received \d+ of its {len(content)} bytes"):
        fetch_reports(server.options(), BILLER, DAYS[:1], inbox, nothing_imported)

    assert os.listdir(inbox) == []


def test_the_download_is_renamed_only_once_complete(server, inbox, monkeypatch):
    content = server.publish(cob(DAYS[0]), report(DAYS[0], details=2000))
    renames = []
    real_replace = os.replace

    def replace(source, target):
        renames.append((Path(source).name, Path(target).name, Path(source).read_bytes()))
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    fetch_reports(server.options(), BILLER, DAYS[:1], inbox, nothing_imported)

    [(temporary, final, written)] = renames
    assert final == cob(DAYS[0]) and written == content
    assert temporary != final and not temporary.startswith("COB")  # never taken for a report


# -- TLS on the data connections ------------------------------------------------------------

@pytest.mark.parametrize("tls_max", [SSL.TLS1_2_VERSION, None], ids=["TLS1.2", "TLS1.3"])
def test_every_data_connection_resumes_the_control_session(pki, tmp_path, inbox, tls_max):
    for tls in ("implicit", "explicit"):
        ftp = FtpsServer(tmp_path / tls, tls, ca_file=pki["ca"])
        with serving(ftp, pki["server"], tls_max):
            for day in DAYS[:3]:
                ftp.publish(cob(day), report(day))
            fetch_reports(ftp.options(), BILLER, DAYS[:3], inbox, nothing_imported)
        assert ftp.resumed == [True] * 4, tls  # the listing and three reports


def test_data_connections_closed_without_a_tls_goodbye_still_serve(server, inbox):
    # the transfer's reply decides, as with servers that skip close_notify (and pyftpdlib,
    # now and then, on an empty listing)
    server.tls_goodbye = False
    assert list_reports(server.options(), BILLER) == []
    content = server.publish(cob(DAYS[0]), report(DAYS[0]))
    assert list_reports(server.options(), BILLER) == [cob(DAYS[0])]
    [path] = fetch_reports(server.options(), BILLER, DAYS, inbox, nothing_imported)
    assert path.read_bytes() == content


def test_options_hide_the_password_and_know_the_tls_modes():
    assert PASSWORD not in repr(FtpsSettings("h", password=PASSWORD))
    with pytest.raises(ValueError, match="implicit, explicit"):
        FtpsSettings("h", tls="none")


# -- `pmc-adapter fetch-cob`: fetched and imported, as an operator runs it -----------------

@pytest.fixture
def own_database(own_database):
    """Migrated, as ``pmc-adapter upgrade-schema`` leaves it: fetch-cob does not migrate."""
    from support.databases import migrated

    return migrated(own_database)


def test_fetch_cob_downloads_and_imports_what_is_new_and_only_that(server, own_database,
                                                                   tmp_path):
    import subprocess
    import sys

    from adapter.domain.calendar import previous_business_day
    from support.cobgen import cob_text
    from support.data import today
    from support.servers import Database

    day = today()
    names = []
    for back in (1, 2):  # names ahead of today and behind it are both looked for
        on = day + timedelta(days=back) if back == 1 else previous_business_day(day)
        names.append(cob(on))
        server.publish(cob(on), cob_text(BILLER, on, [
            dict(customer=f"C{back}", invoice="F1", amount="10.00", paid_on=day - timedelta(1),
                 control=f"{back:04d}")]).encode("latin-1"))
    server.publish(cob(day, biller="5678"), report(day, biller="5678"))  # not asked for
    environment = adapter_environment(
        server, own_database, BILLER, PMC_ADAPTER_COB_DOWNLOAD_DIR=str(tmp_path / "downloads"))
    command = [str(Path(sys.executable).with_name("pmc-adapter")), "fetch-cob"]
    first = subprocess.run(command, capture_output=True, text=True, env=environment,
                           timeout=120)
    assert first.returncode == 0, first.stderr
    for published in names:
        assert f"{published}: biller 1234" in first.stdout and "1 new" in first.stdout
    assert sorted(path.name for path in (tmp_path / "downloads").iterdir()) == sorted(names)
    database = Database(own_database)
    try:
        assert database.count("report_lines") == 2 and database.count("report_files") == 2
        again = subprocess.run(command, capture_output=True, text=True, env=environment,
                               timeout=120)
        assert again.returncode == 0 and "biller 1234: no new report" in again.stdout
        assert database.count("report_files") == 2
        wrong = subprocess.run(command, capture_output=True, text=True, timeout=120,
                               env={**environment, "PMC_ADAPTER_COB_FTP_PASSWORD": "nope"})
        assert wrong.returncode == 2 and "logging in" in wrong.stderr
        assert "nope" not in wrong.stderr + wrong.stdout
    finally:
        database.engine.dispose()
