"""One log line per SOAP request -- request ID, operation, biller, PMC's identifiers,
outcome, duration, client -- never a payload or a secret; the same request ID in the
X-Request-ID header and in a fault's detail; JSON lines with log_format = "json"."""
from __future__ import annotations

import base64
import json

import requests
from lxml import etree

from support.data import unique
from support.servers import start_server, stop_server, wait_until
from support.soap import TNS, envelope

PASSWORD = "pw-never-logged-8842"


def post(server, payload: bytes, action: str, password: str = PASSWORD):
    return requests.post(server.soap_url, data=payload, timeout=30, headers={
        "Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"',
        "Authorization": "Basic " + base64.b64encode(f"pmc:{password}".encode()).decode()})


def test_each_request_is_one_line_and_its_id_is_in_the_answer(own_database, tmp_path):
    server = start_server(own_database, tmp_path, PMC_ADAPTER_CALLERS=f"pmc:{PASSWORD}",
                          PMC_ADAPTER_TLS_AT_PROXY="true")  # HTTP Basic: TLS in front
    try:
        customer = "SC" + unique("")[-10:]  # a client ID (19 at most), for "no payload"
        answer = post(server, envelope("ConsultarDeuda", [("idEmpresa", "1234"),
                                                          ("idCliente", customer)]),
                      "ConsultarDeuda")
        request_id = answer.headers["X-Request-ID"]
        query_id = etree.fromstring(answer.content).findtext(f".//{{{TNS}}}idConsulta")
        line = wait_until(lambda: next((line for line in server.log().splitlines()
                                        if f"request={request_id}" in line), None),
                          what="the request's log line")
        assert f"soap request={request_id} operation=ConsultarDeuda empresa=1234 " \
               f"idConsulta={query_id} outcome=1 ms=" in line and "client=127.0.0.1" in line

        fault = post(server, envelope("ConsultarDeuda", [("idEmpresa", "12"),
                                                         ("idCliente", customer)]),
                     "ConsultarDeuda")
        fault_id = fault.headers["X-Request-ID"]
        detail = etree.fromstring(fault.content).find(f".//{{{TNS}}}falla")
        assert detail.findtext(f"{{{TNS}}}idSolicitud") == fault_id != request_id
        wait_until(lambda: f"soap request={fault_id} operation=ConsultarDeuda outcome=fault "
                           f"Client.SchemaViolation" in server.log(), what="the fault's line")
        refused = post(server, envelope("Eco", []), "Eco", password="wrong-" + PASSWORD)
        assert refused.status_code == 500
        log = server.log()
        assert PASSWORD not in log and customer not in log  # no secret, no payload
    finally:
        stop_server(server)


def test_log_format_json_makes_each_line_an_object(own_database, tmp_path):
    server = start_server(own_database, tmp_path, PMC_ADAPTER_LOG_FORMAT="json")
    try:
        operation = unique("OP")
        answer = requests.post(server.soap_url, timeout=30, data=envelope("InformarPago", [
            ("idEmpresa", "1234"), ("idOperacion", operation), ("idCliente", "NOBODY"),
            ("idFactura", "F-1"), ("importe", "1.00"), ("moneda", "ARS"),
            ("fechaPago", "2026-01-15T10:00:00-03:00")]),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "InformarPago"})
        request_id = answer.headers["X-Request-ID"]

        def the_line():
            for line in server.log().splitlines():
                if line.startswith("{") and request_id in line:
                    return json.loads(line)
            return None

        entry = wait_until(the_line, what="the JSON line")
        assert {key: entry[key] for key in ("request", "operation", "empresa", "idOperacion",
                                            "outcome", "level", "logger")} == {
            "request": request_id, "operation": "InformarPago", "empresa": "1234",
            "idOperacion": operation, "outcome": "3", "level": "info",
            "logger": "adapter.soap.gateway"}
        assert isinstance(entry["ms"], float) and entry["time"].endswith("+00:00")
    finally:
        stop_server(server)


def test_a_request_has_one_access_line(own_database, tmp_path):
    """An operation's record (SOAP or PMC's JSON API) is its access line: gunicorn writes
    none beside it; what the gateways do not record (the contract, /health) keeps
    gunicorn's, in the same format."""
    server = start_server(own_database, tmp_path)
    try:
        answers = [requests.post(server.soap_url, timeout=30, data=envelope(
            "ConsultarDeuda", [("idEmpresa", "1234"), ("idCliente", unique("C")[-18:])]),
            headers={"Content-Type": "text/xml; charset=utf-8",
                     "SOAPAction": '"ConsultarDeuda"'}) for _ in range(3)]
        answers.append(requests.post(server.soap_url, data=b"<not-soap", timeout=30, headers={
            "Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"ConsultarDeuda"'}))
        answers.append(requests.post(server.base_url + "/api/v1/payment_notify", timeout=30,
                                     json={"operation_id": "x"}))
        requests.get(server.base_url + "/soap?wsdl", timeout=30).raise_for_status()
        ids = [answer.headers["X-Request-ID"] for answer in answers]
        wait_until(lambda: all(f"request={request_id}" in server.log() for request_id in ids)
                   and "GET /soap?wsdl" in server.log(), what="every request's line")
    finally:
        stop_server(server)
    lines = server.log().splitlines()
    for request_id in ids:
        assert sum(f"request={request_id}" in line for line in lines) == 1, request_id
    assert not [line for line in lines if "POST /soap" in line or "POST /api/" in line]
    assert sum("GET /soap?wsdl" in line for line in lines) == 1
