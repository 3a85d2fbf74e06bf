"""Bad input gets a precise SOAP fault, writes nothing, and the server keeps serving."""
import http.client
from urllib.parse import urlsplit

import pytest
import requests

from support.data import unique
from support.soap import SOAP_ENV, TNS, envelope

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
    "too deep": (DEEP, None, "Client.DocumentTooDeep", "limit is 32"),
    "far too deep": (VERY_DEEP, None, "Client.DocumentTooDeep", "levels deep"),
    "too large": (HUGE, None, "Client.RequestTooLarge", "limit of 65536 bytes"),
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
    # mustUnderstand is an xs:boolean: whitespace collapses
    "must understand with spaces": (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:p="{TNS}"><soap:Header>'
        '<p:firma soap:mustUnderstand=" 1 ">x</p:firma></soap:Header><soap:Body>'
        '<p:ConsultarDeuda><p:idEmpresa>1234</p:idEmpresa><p:idCliente>C</p:idCliente>'
        '</p:ConsultarDeuda></soap:Body></soap:Envelope>', None, "MustUnderstand", "firma"),
    "too many elements": (wrap("<p:ConsultarDeuda><p:idEmpresa>1234</p:idEmpresa>"
                               "<p:idCliente>C1</p:idCliente></p:ConsultarDeuda>").replace(
        "<soap:Body>", "<soap:Header>" + "<x/>" * 600 + "</soap:Header><soap:Body>"),
        None, "Client.TooManyElements", "limit is 500"),
    # attributes cost xmlschema time in the cube of their number (2,400 of them: minutes of
    # CPU): refused while parsing, before any schema work, namespace declarations included
    "too many attributes on one element": (envelope("ConsultarDeuda", VALID_QUERY).replace(
        b"<p:idCliente>", b"<p:idCliente " + b" ".join(
            b'a%d="x"' % n for n in range(2400)) + b">"), "ConsultarDeuda",
        "Client.TooManyAttributes", "limit is 32"),
    "too many namespace declarations on one element": (envelope(
        "ConsultarDeuda", VALID_QUERY).replace(b"<p:idCliente>", b"<p:idCliente " + b" ".join(
            b'xmlns:n%d="urn:n%d"' % (n, n) for n in range(2400)) + b">"), "ConsultarDeuda",
        "Client.TooManyAttributes", "limit is 32"),
    "too many attributes in the document": (wrap(
        "<p:ConsultarDeuda><p:idEmpresa>1234</p:idEmpresa><p:idCliente>C1</p:idCliente>"
        "</p:ConsultarDeuda>").replace("<soap:Body>", "<soap:Header>" + "".join(
            "<x " + " ".join(f"a{n}='x'" for n in range(20)) + "/>" for _ in range(15))
        + "</soap:Header><soap:Body>"), None, "Client.TooManyAttributes", "limit is 256"),
    # valid XSD that the adapter cannot represent: the contract's type leaves it out
    "hour 24": (envelope("InformarPago", payment(fechaPago="2026-11-26T24:00:00-03:00")),
                "InformarPago", "Client.SchemaViolation", "/InformarPago/fechaPago"),
    "instant before year 1 in UTC": (envelope("InformarPago", payment(
        fechaPago="0001-01-01T00:00:00+03:00")), "InformarPago", "Client.SchemaViolation",
        "/InformarPago/fechaPago"),
    "instant after year 9999 in UTC": (envelope("InformarPago", payment(
        fechaPago="9999-12-31T23:00:00-05:00")), "InformarPago", "Client.SchemaViolation",
        "/InformarPago/fechaPago"),
    "year of five digits": (envelope("InformarPago", payment(
        fechaPago="10000-01-01T00:00:00Z")), "InformarPago", "Client.SchemaViolation",
        "/InformarPago/fechaPago"),
    "nanoseconds": (envelope("InformarPago", payment(
        fechaPago="2026-11-26T10:00:00.123456789Z")), "InformarPago", "Client.SchemaViolation",
        "/InformarPago/fechaPago"),
    "amount beyond NUMERIC(15, 2)": (envelope("InformarPago", payment(
        importe="999999999999999")), "InformarPago", "Client.SchemaViolation", "importe"),
    # valid for xmlschema, not for XSD (nor libxml2)
    "space inside an amount": (envelope("InformarPago", payment(importe="1 000.00")),
                               "InformarPago", "Client.SchemaViolation", "importe"),
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


TRANSPORT_CASES = {
    # name: (Content-Type, body encoding, fault code, words)
    "SOAP 1.2 media type": ("application/soap+xml; charset=utf-8", "utf-8",
                            "Client.UnsupportedMediaType", "text/xml"),
    "attachments": ("multipart/related; boundary=XYZ; type=text/xml", "utf-8",
                    "Client.UnsupportedMediaType", "multipart/related"),
    "two media types": ("text/xml, multipart/related", "utf-8",
                        "Client.UnsupportedMediaType", "cannot be read"),
    "charset twice": ("text/xml; charset=utf-8; charset=utf-7", "utf-8",
                      "Client.UnsupportedMediaType", "charset twice"),
    "utf-7": ("text/xml; charset=utf-7", "utf-8", "Client.UnsupportedCharset", "utf-7"),
    "latin-1": ("text/xml; charset=ISO-8859-1", "utf-8", "Client.UnsupportedCharset",
                "ISO-8859-1"),
    "charset against the bytes": ("text/xml; charset=utf-8", "utf-16",
                                  "Client.CharsetMismatch", "utf-16"),
}


@pytest.mark.parametrize("case", TRANSPORT_CASES)
def test_the_transport_is_checked_before_the_body(soap, db, server, case):
    content_type, encoding, code, words = TRANSPORT_CASES[case]
    before = db.counts()
    reply = soap.post(envelope("InformarPago", payment()).decode().encode(encoding),
                      soap_action="InformarPago", content_type=content_type)
    assert reply.fault_code == f"soap:{code}"
    assert words in reply.fault_string
    assert db.counts() == before


@pytest.mark.parametrize("content_type, encoding", [
    (None, "utf-8"), ("text/xml", "utf-16"), ("TEXT/XML; CHARSET=\"UTF-16\"", "utf-16"),
    ("text/xml;charset=UTF-8", "utf-8")])
def test_honest_requests_are_accepted_whatever_their_allowed_spelling(server, db, schema,
                                                                     content_type, encoding):
    operation = unique("OP")
    body = envelope("InformarPago", payment(idOperacion=operation)).decode()
    body = body.replace("encoding='UTF-8'", f"encoding='{encoding.upper()}'").encode(encoding)
    headers = {"SOAPAction": '"InformarPago"'}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = requests.post(server.soap_url, data=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert db.count("payments", operation_id=operation) == 1


def test_whitespace_around_a_collapsing_value_is_accepted_and_stored(soap, db):
    operation = unique("OP")
    reply = soap.call("InformarPago", payment(idOperacion=operation, importe="\n 10.00 ",
                                              fechaPago=" 2026-11-26T10:15:00-03:00 "))
    assert not reply.is_fault and reply.field("idRecibo")
    assert db.count("payments", operation_id=operation) == 1


def test_an_offset_with_minutes_is_the_instant_it_says(soap, db):
    # spyne 2.14 alone reads -03:30 as -02:30 and -00:30 as +00:30
    from sqlalchemy import select

    from adapter.storage.orm import PaymentRow
    for offset, utc in (("-03:30", "13:45"), ("-00:30", "10:45")):
        operation = unique("OP")
        soap.call("InformarPago", payment(idOperacion=operation,
                                          fechaPago=f"2026-11-26T10:15:00{offset}"))
        (paid_at,) = db.rows(select(PaymentRow.paid_at).where(
            PaymentRow.operation_id == operation))[0]
        assert paid_at.strftime("%H:%M") == utc, offset


@pytest.mark.parametrize("target", ["file:///dev/zero", "file:///nonexistent/x.dtd",
                                    "file:///etc/passwd", "http://127.0.0.1:9/x.dtd"])
def test_every_dtd_gets_the_same_fault_at_once(soap, server, target):
    payload = (f'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY % p SYSTEM "{target}"> %p;]>'
               + wrap("<p:ConsultarDeuda><p:idEmpresa>1234</p:idEmpresa>"
                      "<p:idCliente>C1</p:idCliente></p:ConsultarDeuda>"))
    reply = soap.post(payload)
    assert reply.fault_code == "soap:Client.DtdForbidden"
    # nothing was opened: the answer cannot tell an existing file from a missing one
    assert reply.fault_string == "DTDs and entity declarations are not allowed in SOAP messages"


def test_many_parameter_entities_on_dev_zero_do_not_stop_the_server(server):
    payload = ('<?xml version="1.0"?><!DOCTYPE e [<!ENTITY % p SYSTEM "file:///dev/zero"> %p;]>'
               + wrap("<p:ConsultarDeuda/>")).encode()
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(40) as pool:
        statuses = list(pool.map(lambda _: requests.post(
            server.soap_url, data=payload, headers={"Content-Type": "text/xml"},
            timeout=20).status_code, range(40)))
    assert statuses == [500] * 40
    assert server.alive()


def test_a_big_header_of_tiny_elements_is_refused_by_size(soap, db):
    header = "<soap:Header>" + "<a/>" * (256 * 1024) + "</soap:Header>"
    payload = wrap("<p:ConsultarDeuda/>").replace("<soap:Body>", header + "<soap:Body>")
    reply = soap.post(payload)
    assert reply.fault_code == "soap:Client.RequestTooLarge"


def test_a_header_for_another_actor_is_ignored_even_if_it_must_be_understood(soap):
    payload = (f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:p="{TNS}"><soap:Header>'
               '<p:firma soap:mustUnderstand="1" soap:actor="urn:another-node">x</p:firma>'
               '</soap:Header><soap:Body><p:ConsultarDeuda><p:idEmpresa>1234</p:idEmpresa>'
               '<p:idCliente>C</p:idCliente></p:ConsultarDeuda></soap:Body></soap:Envelope>')
    assert soap.post(payload).field("codigoRespuesta") == "1"
