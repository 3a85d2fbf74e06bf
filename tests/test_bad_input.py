"""Bad input gets a precise SOAP fault, writes nothing, and the server keeps serving."""
import http.client
from urllib.parse import urlsplit

import pytest
import requests

from conftest import SOAP_ENV, TNS, envelope, unique

VALID_QUERY = [("idEmpresa", "1234"), ("idCliente", "C1")]


def payment(**overrides):
    fields = {"idEmpresa": "1234", "idOperacion": unique("OP"), "idCliente": "C1",
              "idFactura": "F1", "importe": "10.00", "moneda": "ARS",
              "fechaPago": "2026-11-26T10:00:00-03:00", **overrides}
    return [(name, value) for name, value in fields.items() if value is not None]


def wrap(body: str, prolog: str = "") -> str:
    return (f'{prolog}<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:p="{TNS}">'
            f"<soap:Body>{body}</soap:Body></soap:Envelope>")


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>""" + wrap("<p:ConsultarDeuda><p:idEmpresa>1234</p:idEmpresa>"
             "<p:idCliente>&lol5;</p:idCliente></p:ConsultarDeuda>")

XXE = """<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>""" + wrap(
    "<p:ConsultarDeuda><p:idEmpresa>1234</p:idEmpresa>"
    "<p:idCliente>&secret;</p:idCliente></p:ConsultarDeuda>")

DEEP = wrap("<p:ConsultarDeuda>" + "<p:x>" * 100 + "</p:x>" * 100 + "</p:ConsultarDeuda>")
VERY_DEEP = wrap("<a>" * 5000 + "</a>" * 5000)
HUGE = wrap("<p:ConsultarDeuda><p:idEmpresa>1234</p:idEmpresa><p:idCliente>C1</p:idCliente>"
            "<!--" + "x" * (1024 * 1024) + "--></p:ConsultarDeuda>")
SOAP12 = ('<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body>'
          f'<p:ConsultarDeuda xmlns:p="{TNS}"/></env:Body></env:Envelope>')

CASES = {
    # name: (payload, SOAPAction, fault code, words the message must contain)
    "not xml": ("this is not XML", None, "Client.MalformedXml", "malformed XML"),
    "truncated xml": (wrap("<p:ConsultarDeuda>")[:-20], None, "Client.MalformedXml",
                      "malformed XML"),
    "empty body": ("", None, "Client.MalformedXml", "empty request"),
    "billion laughs": (BILLION_LAUGHS, None, "Client.DtdForbidden", "DTD"),
    "external entity": (XXE, None, "Client.DtdForbidden", "DTD"),
    "too deep": (DEEP, None, "Client.DocumentTooDeep", "limit is 64"),
    "far too deep": (VERY_DEEP, None, "Client.DocumentTooDeep", "deeper"),
    "too large": (HUGE, None, "Client.RequestTooLarge", "limit of 1048576 bytes"),
    "not an envelope": (f'<p:ConsultarDeuda xmlns:p="{TNS}"/>', None,
                        "Client.NotSoapEnvelope", "SOAP 1.1 Envelope"),
    "soap 1.2": (SOAP12, None, "VersionMismatch", "SOAP 1.2"),
    "two body entries": (wrap("<p:ConsultarDeuda/><p:ConsultarDeuda/>"), None,
                         "Client.NotSoapEnvelope", "exactly one request"),
    "unknown operation": (wrap("<p:BorrarTodo/>"), None, "Client.UnknownOperation",
                          "ConsultarDeuda, InformarPago, AltaFactura"),
    "must understand header": (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:p="{TNS}"><soap:Header>'
        '<p:firma soap:mustUnderstand="1">x</p:firma></soap:Header><soap:Body>'
        '<p:ConsultarDeuda><p:idEmpresa>1234</p:idEmpresa><p:idCliente>C</p:idCliente>'
        '</p:ConsultarDeuda></soap:Body></soap:Envelope>', None, "MustUnderstand", "firma"),
    "soapaction of another operation": (envelope("ConsultarDeuda", VALID_QUERY), "InformarPago",
                                        "Client.SoapActionMismatch", "ConsultarDeuda"),
    "missing element": (envelope("InformarPago", payment(importe=None)), "InformarPago",
                        "Client.SchemaViolation", "importe"),
    "too many decimals": (envelope("InformarPago", payment(importe="10.001")), "InformarPago",
                          "Client.SchemaViolation", "/InformarPago/importe"),
    "negative amount": (envelope("InformarPago", payment(importe="-1.00")), "InformarPago",
                        "Client.SchemaViolation", "/InformarPago/importe"),
    "unknown currency": (envelope("InformarPago", payment(moneda="EUR")), "InformarPago",
                         "Client.SchemaViolation", "/InformarPago/moneda"),
    "payment time without offset": (envelope("InformarPago", payment(
        fechaPago="2026-11-26T10:00:00")), "InformarPago", "Client.SchemaViolation",
        "/InformarPago/fechaPago"),
    "client id too long": (envelope("ConsultarDeuda", [("idEmpresa", "1234"),
                                                       ("idCliente", "C" * 20)]),
                           "ConsultarDeuda", "Client.SchemaViolation", "/ConsultarDeuda/idCliente"),
    "biller id not 4 digits": (envelope("ConsultarDeuda", [("idEmpresa", "12"),
                                                           ("idCliente", "C1")]),
                               "ConsultarDeuda", "Client.SchemaViolation", "idEmpresa"),
    "four due dates": (envelope("AltaFactura", [
        ("idEmpresa", "1234"), ("idCliente", "C1"), ("idFactura", "F1"), ("moneda", "ARS"),
        ("vencimientos", [("vencimiento", [("fecha", f"2030-01-0{d}"), ("importe", "1")])
                          for d in range(1, 5)])]), "AltaFactura", "Client.SchemaViolation",
        "vencimiento"),
    "biller not served": (envelope("InformarPago", payment(idEmpresa="9999")), "InformarPago",
                          "Client.UnknownEmpresa", "9999"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_a_client_fault_that_writes_nothing(soap, db, server, case):
    payload, action, code, words = CASES[case]
    before = db.counts()
    reply = soap.post(payload, soap_action=action)
    assert reply.is_fault
    assert reply.fault_code == f"soap:{code}"
    assert words in reply.fault_string
    assert reply.entry.findtext(f"detail/{{{TNS}}}falla/{{{TNS}}}codigo") == code
    assert db.counts() == before
    assert server.alive()


def test_oversized_body_is_refused_before_it_is_read(server, db):
    # Declares 50 MiB and sends a few bytes: answered from the header alone.
    before = db.counts()
    connection = http.client.HTTPConnection(urlsplit(server.base_url).netloc, timeout=10)
    connection.putrequest("POST", "/soap")
    connection.putheader("Content-Type", "text/xml")
    connection.putheader("Content-Length", str(50 * 1024 * 1024))
    connection.endheaders(b"<x/>")
    response = connection.getresponse()
    assert response.status == 500 and b"Client.RequestTooLarge" in response.read()
    connection.close()
    assert db.counts() == before and server.alive()


def test_no_file_content_leaks_through_an_entity(soap):
    reply = soap.post(XXE)
    assert b"root:" not in reply.entry.findtext("faultstring").encode()


def test_wrong_http_method_and_unknown_path(server):
    assert requests.put(server.soap_url, data=b"x", timeout=10).status_code == 405
    assert requests.get(server.base_url + "/nothing", timeout=10).status_code == 404
    assert requests.get(server.base_url + "/xsd/../setup.cfg", timeout=10).status_code == 404
