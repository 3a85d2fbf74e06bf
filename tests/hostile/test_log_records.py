"""Nothing from outside forges a log record: whatever a message carries -- a parser's
message quoting the document, a user name, a header -- it is one line (text) or one
JSON object (json), and shows what it held, escaped. Against the formatters with
hypothesis, and against a real server whose log gets hostile requests."""
from __future__ import annotations

import base64
import json
import logging
import re

import pytest
import requests
from hypothesis import given, settings, strategies as st

from adapter.logs import JsonLines, TextLines, escaped
from support.servers import start_server, stop_server

# A text record: time, process, level, logger; or a line of a traceback, marked.
RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[\d+\] \[[A-Z]+\] [\w.]+: ")
TRACEBACK_LINE = "  | "
LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=("Cs",)), max_size=300)


def record(message: str, *args) -> logging.LogRecord:
    return logging.LogRecord("adapter.test", logging.WARNING, __file__, 1, message, args, None)


@settings(max_examples=400, deadline=None)
@given(ANY_TEXT)
def test_a_text_record_is_one_line_whatever_it_carries(value):
    line = TextLines().format(record("refused %s", value))
    assert len(line.splitlines()) == 1 and not LINE_BREAKS.search(line)
    assert RECORD.match(line)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u00a0\u202e\ufeff]", line)


@settings(max_examples=400, deadline=None)
@given(ANY_TEXT)
def test_a_json_record_is_one_ascii_object_holding_exactly_what_was_logged(value):
    line = JsonLines().format(record("refused %s", value))
    assert line.isascii() and len(line.splitlines()) == 1
    assert json.loads(line)["message"] == f"refused {value}"


def test_escapes_are_readable_and_cannot_pass_for_each_other():
    assert escaped("a\nb") == "a\\nb" and escaped("a\\nb") == "a\\\\nb"
    assert escaped("x\u00a0outcome=00") == "x\\xa0outcome=00"  # no second field
    assert escaped("\x1b[2J") == "\\x1b[2J" and escaped("\u2028") == "\\u2028"
    assert escaped("Ñandú S.A.") == "Ñandú S.A."  # printable text stays as it is
    assert escaped("x" * 5000).endswith("... (1000 more characters)")


def test_a_traceback_is_marked_line_by_line():
    try:
        raise ValueError("a message\n2026-12-07 00:00:00,000 [1] [INFO] adapter: FORGED")
    except ValueError:
        entry = logging.LogRecord("adapter", logging.ERROR, __file__, 1, "failed", (),
                                  __import__("sys").exc_info())
    first, *rest = TextLines().format(entry).split("\n")
    assert RECORD.match(first) and rest and all(line.startswith(TRACEBACK_LINE) for line in rest)


# -- a real server's log -------------------------------------------------------------------

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
FORGED = "2026-12-07 00:00:00,000 [1] [INFO] adapter: FORGED"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def hostile_requests(server) -> None:
    soap = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"Eco"'}
    # a namespace URI holding a line of its own: the parser's message quotes it
    requests.post(server.soap_url, headers=soap, timeout=30, data=(
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:p="urn:x&#10;{FORGED}&#27;[2J">'
        '<soap:Body><p:Eco/></soap:Body></soap:Envelope>').encode())
    # a user name with a line break: the refusal, and the access log, name it
    requests.post(server.soap_url, headers={**soap, "Authorization": basic(
        f"pmc\n{FORGED}", "x")}, timeout=30, data=b"<x/>")
    # a Created padded with line breaks
    requests.post(server.soap_url, headers=soap, timeout=30, data=(
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Header><wsse:Security xmlns:wsse='
        '"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"'
        ' xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-'
        'utility-1.0.xsd"><wsu:Timestamp><wsu:Created>' + "&#10;" * 8000 + FORGED +
        '</wsu:Created></wsu:Timestamp></wsse:Security></soap:Header><soap:Body/>'
        '</soap:Envelope>').encode())
    # an access_token of PMC's JSON API with a line break
    requests.post(server.base_url + "/api/v1/payment_notify", timeout=30,
                  json={"access_token": f"t\n{FORGED}", "operation_id": f"x\u2028{FORGED}"})
    requests.get(server.base_url + "/nothing%0a" + FORGED.replace(" ", "%20"), timeout=30)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_hostile_requests_forge_no_record_in_the_servers_log(tmp_path, log_format):
    server = start_server(f"sqlite:///{tmp_path / 'adapter.sqlite3'}", tmp_path,
                          PMC_ADAPTER_CALLERS="pmc:a-password-1234",
                          PMC_ADAPTER_TLS_AT_PROXY="true", PMC_ADAPTER_LOG_FORMAT=log_format)
    try:
        hostile_requests(server)
    finally:
        stop_server(server)
    log = server.log()
    lines = log.splitlines()
    assert "FORGED" in log  # the hostile values were logged...
    for line in lines:  # ...and every line is a record of the server's own
        if log_format == "json":
            assert isinstance(json.loads(line), dict), line
            assert line.isascii()
        else:
            assert RECORD.match(line) or line.startswith(TRACEBACK_LINE), line
            assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", line), line
    assert not any(line.startswith(FORGED) for line in lines)
