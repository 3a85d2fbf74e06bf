"""Who may call: caller credentials (HTTP Basic, WS-Security UsernameToken) and address
allow-lists. A refused caller gets a precise SOAP fault and writes nothing."""
import base64
import hashlib
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import requests
import zeep
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from adapter.soap.security import AUTHENTICATION_FAILED
from support.data import today, unique
from support.servers import start_server, stop_server
from support.soap import RawSoap, envelope

CONFIG = """
[adapter]
allowed_networks = ["127.0.0.0/8", "::1/128"]
trusted_proxies = ["127.0.0.1/32"]   # the tests play a TLS proxy with X-Forwarded-Proto

# the two real callers' roles, as the README gives them
[callers.pmc]
password = "pmc-s3cret"
operations = ["ConsultarDeuda", "InformarPago", "AnularPago", "ConsultarPago", "Eco"]

[callers.web]
password = "web-s3cret"
operations = ["AltaFactura", "ConsultarDeuda"]

[callers.other]
password = "other-s3cret"
operations = ["ConsultarDeuda"]
empresas = ["5678"]
"""


@pytest.fixture(scope="module")
def secured(database_url, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("secured")
    (workdir / "adapter.toml").write_text(CONFIG)
    server = start_server(database_url, workdir, PMC_ADAPTER_CONFIG=str(workdir / "adapter.toml"))
    yield server
    stop_server(server)


def query(customer="C1"):
    return envelope("ConsultarDeuda", [("idEmpresa", "1234"), ("idCliente", customer)])


def basic(name, password):
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


# what a TLS-terminating proxy in front (trusted_proxies) says of the client's request
VIA_TLS = {"X-Forwarded-Proto": "https"}


def post(server, schema, payload, authorization=None, action="ConsultarDeuda", headers=None,
         plain_http=False):
    """``authorization`` (HTTP Basic) travels through the trusted TLS proxy the tests
    play, unless ``plain_http``: a password in clear text is taken only over HTTPS."""
    via = VIA_TLS if authorization and not plain_http else {}
    headers = {**via, **({"Authorization": authorization} if authorization else {}),
               **(headers or {})}
    return RawSoap(server.soap_url, schema).post(payload, soap_action=action, headers=headers)


@pytest.mark.parametrize("authorization", [None, basic("pmc", "wrong"), basic("nobody", "x"),
                                           "Basic !!!not-base64"])
def test_missing_or_wrong_credentials_are_refused_and_write_nothing(secured, schema,
                                                                    authorization):
    before = secured.database.counts()
    reply = post(secured, schema, query(), authorization)
    assert reply.fault_code == "soap:Client.NotAuthenticated"
    assert secured.database.counts() == before


def test_http_basic_credentials_are_accepted(secured, schema):
    reply = post(secured, schema, query(), basic("pmc", "pmc-s3cret"))
    assert reply.field("codigoRespuesta") == "1"


@pytest.mark.parametrize("digest", [False, True])
def test_ws_security_username_token_is_accepted(secured, digest):
    session = requests.Session()
    client = zeep.Client(secured.soap_url + "?wsdl", transport=Transport(session=session),
                         wsse=UsernameToken("pmc", "pmc-s3cret", use_digest=digest))
    # the calls, not the WSDL (whose address would then be https), through the TLS proxy:
    session.headers.update(VIA_TLS)  # PasswordText only over HTTPS
    assert client.service.ConsultarDeuda(idEmpresa="1234", idCliente="C1").codigoRespuesta == 1


@pytest.mark.parametrize("digest", [False, True])
def test_ws_security_with_a_wrong_password_is_refused(secured, digest):
    client = zeep.Client(secured.soap_url + "?wsdl",
                         wsse=UsernameToken("pmc", "guess", use_digest=digest))
    with pytest.raises(zeep.exceptions.Fault) as fault:
        client.service.ConsultarDeuda(idEmpresa="1234", idCliente="C1")
    assert fault.value.code.endswith("Client.NotAuthenticated")


def digest_token(created: datetime, nonce: bytes | None = None, name: str = "pmc",
                 password: str = "pmc-s3cret", nonce_text: str | None = None) -> str:
    """A wsse:Security header with a PasswordDigest UsernameToken, as the profile says
    (``nonce_text``: another base64 spelling of ``nonce`` to send)."""
    nonce = os.urandom(16) if nonce is None else nonce
    created_text = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = base64.b64encode(hashlib.sha1(nonce + created_text.encode()
                                           + password.encode()).digest())
    wsse = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
    wsu = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
    return (f'<soap:Header><wsse:Security xmlns:wsse="{wsse}" xmlns:wsu="{wsu}" '
            f'soap:mustUnderstand="1"><wsse:UsernameToken><wsse:Username>{name}</wsse:Username>'
            '<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-'
            f'username-token-profile-1.0#PasswordDigest">{digest.decode()}</wsse:Password>'
            f'<wsse:Nonce>{nonce_text or base64.b64encode(nonce).decode()}</wsse:Nonce>'
            f'<wsu:Created>{created_text}</wsu:Created></wsse:UsernameToken></wsse:Security>'
            '</soap:Header>')


def with_header(header: str, payload: bytes | None = None) -> bytes:
    return (payload or query()).decode().replace("<soap:Body>", header + "<soap:Body>").encode()


def test_a_stale_password_digest_is_refused(secured, schema):
    stale = digest_token(datetime.now(timezone.utc) - timedelta(minutes=10))
    reply = post(secured, schema, with_header(stale))
    assert reply.fault_code == "soap:Client.NotAuthenticated"
    assert reply.fault_string == AUTHENTICATION_FAILED  # the reason is for the log only
    assert "not within 300 s of now" in secured.log()


def test_a_replayed_password_digest_is_refused_and_writes_nothing(secured, schema):
    customer = unique("C")
    payload = with_header(digest_token(datetime.now(timezone.utc)), query(customer))
    assert post(secured, schema, payload).field("codigoRespuesta") == "1"
    before = secured.database.counts()
    replayed = post(secured, schema, payload)
    assert replayed.fault_code == "soap:Client.NotAuthenticated"
    assert replayed.fault_string == AUTHENTICATION_FAILED
    assert secured.database.counts() == before
    assert secured.database.count("debt_queries", customer_id=customer) == 1
    assert "replayed" in secured.log()


def test_a_nonce_is_the_same_nonce_in_another_base64_spelling(secured, schema):
    now = datetime.now(timezone.utc)
    nonce = os.urandom(15) + b"A"  # 16 bytes: the last base64 group carries 4 unused bits
    canonical = base64.b64encode(nonce).decode()
    other = canonical[:-3] + chr(ord(canonical[-3]) + 1) + "=="
    assert other != canonical and base64.b64decode(other) == nonce
    assert post(secured, schema, with_header(digest_token(now, nonce))) \
        .field("codigoRespuesta") == "1"
    replayed = post(secured, schema, with_header(digest_token(now, nonce, nonce_text=other)))
    assert replayed.fault_code == "soap:Client.NotAuthenticated"


def test_a_digest_with_a_wrong_password_does_not_spend_the_nonce(secured, schema):
    nonce, now = os.urandom(16), datetime.now(timezone.utc)
    forged = post(secured, schema, with_header(digest_token(now, nonce, password="guess")))
    assert forged.fault_code == "soap:Client.NotAuthenticated"
    assert post(secured, schema, with_header(digest_token(now, nonce))) \
        .field("codigoRespuesta") == "1"


def test_a_digest_replayed_to_another_instance_is_refused_even_at_once(secured, schema,
                                                                     database_url, tmp_path):
    """Two instances on one database: the token is taken once, whichever gets it first,
    also when both get it at the same moment."""
    (tmp_path / "adapter.toml").write_text(CONFIG)
    other = start_server(database_url, tmp_path,
                         PMC_ADAPTER_CONFIG=str(tmp_path / "adapter.toml"))
    try:
        payload = with_header(digest_token(datetime.now(timezone.utc)))
        assert post(secured, schema, payload).field("codigoRespuesta") == "1"
        assert post(other, schema, payload).fault_code == "soap:Client.NotAuthenticated"
        for _ in range(5):  # the same fresh token to both instances at once
            payload = with_header(digest_token(datetime.now(timezone.utc)))
            with ThreadPoolExecutor(6) as pool:
                replies = list(pool.map(lambda server: post(server, schema, payload),
                                        [secured, other] * 3))
            accepted = [reply for reply in replies if not reply.is_fault]
            assert len(accepted) == 1, [reply.fault_code if reply.is_fault else "0"
                                        for reply in replies]
            assert {reply.fault_code for reply in replies if reply.is_fault} == {
                "soap:Client.NotAuthenticated"}
    finally:
        stop_server(other)


def test_the_freshness_window_and_the_tls_proxy_are_settings(database_url, tmp_path, schema):
    config = CONFIG.replace('trusted_proxies = ["127.0.0.1/32"]', "")  # no proxy trusted
    (tmp_path / "adapter.toml").write_text(config)
    server = start_server(database_url, tmp_path, PMC_ADAPTER_WSS_WINDOW="60",
                          PMC_ADAPTER_CONFIG=str(tmp_path / "adapter.toml"))
    try:
        now = datetime.now(timezone.utc)
        late = post(server, schema, with_header(digest_token(now - timedelta(seconds=120))))
        assert late.fault_code == "soap:Client.NotAuthenticated"
        assert "not within 60 s of now" in server.log()
        fresh = post(server, schema, with_header(digest_token(now - timedelta(seconds=20))))
        assert fresh.field("codigoRespuesta") == "1"
        # X-Forwarded-Proto from a client that is no trusted proxy proves nothing
        text = with_security(token("pmc", "pmc-s3cret"))
        assert post(server, schema, text, headers=VIA_TLS).fault_code \
            == "soap:Client.NotAuthenticated"
        assert post(server, schema, query(), basic("pmc", "pmc-s3cret")).fault_code \
            == "soap:Client.NotAuthenticated"  # HTTP Basic: the same rule
    finally:
        stop_server(server)
    server = start_server(database_url, tmp_path, PMC_ADAPTER_TLS_AT_PROXY="true",
                          PMC_ADAPTER_CONFIG=str(tmp_path / "adapter.toml"))
    try:  # TLS ends at a proxy in front, says the operator: clear text over HTTP is fine
        assert post(server, schema, text).field("codigoRespuesta") == "1"
        assert post(server, schema, query(), basic("pmc", "pmc-s3cret"),
                    plain_http=True).field("codigoRespuesta") == "1"
    finally:
        stop_server(server)


def test_a_caller_only_calls_its_operations(secured, schema):
    customer = unique("C")
    alta = envelope("AltaFactura", [
        ("idEmpresa", "1234"), ("idCliente", customer), ("idFactura", "F1"), ("moneda", "ARS"),
        ("vencimientos", [("vencimiento", [("fecha", today().isoformat()), ("importe", "1")])])])
    refused = post(secured, schema, alta, basic("pmc", "pmc-s3cret"), action="AltaFactura")
    assert refused.fault_code == "soap:Client.NotAuthorized"
    assert "pmc may not call AltaFactura" in refused.fault_string
    assert secured.database.count("invoices", customer_id=customer) == 0
    accepted = post(secured, schema, alta, basic("web", "web-s3cret"), action="AltaFactura")
    assert accepted.field("codigoRespuesta") == "0"
    payment = envelope("InformarPago", [
        ("idEmpresa", "1234"), ("idOperacion", unique("OP")), ("idCliente", customer),
        ("idFactura", "F1"), ("importe", "1.00"), ("moneda", "ARS"),
        ("fechaPago", f"{today()}T00:00:00-03:00")])
    assert post(secured, schema, payment, basic("web", "web-s3cret"),
                action="InformarPago").fault_code == "soap:Client.NotAuthorized"
    assert secured.database.count("payments", customer_id=customer) == 0
    reversal = envelope("AnularPago", [
        ("idEmpresa", "1234"), ("idOperacion", unique("OP")), ("idCliente", customer),
        ("idFactura", "F1"), ("importe", "1.00"), ("moneda", "ARS"),
        ("fechaAnulacion", f"{today()}T00:00:00-03:00")])
    assert post(secured, schema, reversal, basic("web", "web-s3cret"),
                action="AnularPago").fault_code == "soap:Client.NotAuthorized"
    assert secured.database.count("reversals", customer_id=customer) == 0
    # the web/app may ask what a client owes (to show it), as PMC does
    assert post(secured, schema, query(customer), basic("web", "web-s3cret")) \
        .field("codigoRespuesta") == "0"
    assert post(secured, schema, reversal, basic("pmc", "pmc-s3cret"),
                action="AnularPago").field("codigoRespuesta") == "8"
    assert secured.database.count("reversals", customer_id=customer) == 1


@pytest.mark.parametrize("public_wsdl", [False, True])
def test_an_address_outside_the_allowed_networks_is_refused(database_url, schema, tmp_path,
                                                            public_wsdl):
    server = start_server(database_url, tmp_path, health_status=403,
                          PMC_ADAPTER_ALLOWED_NETWORKS="10.0.0.0/8",
                          PMC_ADAPTER_PUBLIC_WSDL=str(public_wsdl).lower())
    try:
        before = server.database.counts()
        reply = RawSoap(server.soap_url, schema).post(query(), soap_action="ConsultarDeuda")
        assert reply.fault_code == "soap:Client.AddressNotAllowed"
        assert "127.0.0.1" in reply.fault_string
        assert server.database.counts() == before
        # GET routes too: health always, the contract unless public_wsdl opens it
        assert requests.get(server.base_url + "/health", timeout=10).status_code == 403
        contract_status = 200 if public_wsdl else 403
        for route in ("/soap?wsdl", "/xsd/pmc-adapter.xsd", "/wsdl/pmc-adapter.wsdl",
                      "/api/v1/openapi.json"):
            assert requests.get(server.base_url + route, timeout=10).status_code \
                == contract_status, route
        # PMC's JSON API: refused before its body is read, in its own shape
        notice = requests.post(server.base_url + "/api/v1/payment_notify", timeout=10,
                               json={"access_token": "t", "operation_id": "OP-1"})
        assert (notice.status_code, notice.json()["code"]) == (403, "403")
        assert "127.0.0.1 is not allowed" in notice.json()["message"]
        assert server.database.counts() == before
    finally:
        stop_server(server)


def test_https_serves_soap_and_a_wsdl_with_an_https_address(database_url, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = start_server(database_url, tmp_path, scheme="https", verify=str(cert),
                          PMC_ADAPTER_TLS_CERT=str(cert), PMC_ADAPTER_TLS_KEY=str(key))
    try:
        wsdl = requests.get(server.soap_url + "?wsdl", verify=str(cert), timeout=10)
        assert f'location="https://127.0.0.1:{server.base_url.rsplit(":", 1)[1]}/soap"' \
            in wsdl.text
        session = requests.Session()
        session.trust_env = False  # else a CA bundle from the environment beats session.verify
        session.verify = str(cert)
        client = zeep.Client(server.soap_url + "?wsdl",
                             transport=zeep.transports.Transport(session=session))
        assert client.service.ConsultarDeuda(idEmpresa="1234",
                                             idCliente="C1").codigoRespuesta == 1
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(server.base_url.replace("https", "http") + "/health", timeout=5)
    finally:
        stop_server(server)


WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def with_security(*children: str, payload: bytes | None = None) -> bytes:
    header = (f'<soap:Header><wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}" '
              f'soap:mustUnderstand="1">{"".join(children)}</wsse:Security></soap:Header>')
    return (payload or query()).decode().replace("<soap:Body>", header + "<soap:Body>").encode()


def token(name: str, password: str | None) -> str:
    secret = "" if password is None else f"<wsse:Password>{password}</wsse:Password>"
    return (f"<wsse:UsernameToken><wsse:Username>{name}</wsse:Username>{secret}"
            "</wsse:UsernameToken>")


def timestamp(created: datetime, expires: datetime) -> str:
    return (f"<wsu:Timestamp><wsu:Created>{iso(created)}</wsu:Created>"
            f"<wsu:Expires>{iso(expires)}</wsu:Expires></wsu:Timestamp>")


def test_every_authentication_failure_reads_the_same(secured, schema):
    # A known caller must not get a more telling answer than an unknown one.
    attempts = [
        (query(), basic("nobody", "x")),
        (query(), basic("pmc", "wrong")),
        (with_security(token("nobody", "x")), None),
        (with_security(token("pmc", "wrong")), None),
        (with_security(token("pmc", None)), None),
        (with_security(token("nobody", None)), None),
    ]
    answers = {post(secured, schema, payload, authorization).fault_string
               for payload, authorization in attempts}
    assert answers == {AUTHENTICATION_FAILED}


def test_a_caller_acts_only_for_its_billers(secured, schema):
    allowed = envelope("ConsultarDeuda", [("idEmpresa", "5678"), ("idCliente", unique("C"))])
    assert post(secured, schema, allowed,
                basic("other", "other-s3cret")).field("codigoRespuesta") == "1"
    before = secured.database.counts()
    refused = post(secured, schema, query(), basic("other", "other-s3cret"))
    assert refused.fault_code == "soap:Client.NotAuthorized"
    assert "may not act for biller 1234" in refused.fault_string
    assert secured.database.counts() == before


@pytest.mark.parametrize("extra", [
    '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>',
    '<wsse:BinarySecurityToken>AAAA</wsse:BinarySecurityToken>',
])
def test_a_security_header_with_what_this_service_cannot_check_is_refused(secured, schema,
                                                                        extra):
    before = secured.database.counts()
    reply = post(secured, schema, with_security(token("pmc", "pmc-s3cret"), extra))
    assert reply.fault_code == "soap:Client.NotAuthenticated"
    assert "does not check" in reply.fault_string
    assert secured.database.counts() == before


def test_an_empty_security_header_is_refused(secured, schema):
    reply = post(secured, schema, with_security(), basic("pmc", "pmc-s3cret"))
    assert reply.fault_code == "soap:Client.NotAuthenticated"


def test_an_expired_timestamp_is_refused_and_a_fresh_one_accepted(secured, schema):
    now = datetime.now(timezone.utc)
    expired = with_security(token("pmc", "pmc-s3cret"),
                            timestamp(now - timedelta(minutes=30), now - timedelta(minutes=20)))
    reply = post(secured, schema, expired)
    assert reply.fault_code == "soap:Client.NotAuthenticated"
    assert "expired" in reply.fault_string
    from_the_future = with_security(token("pmc", "pmc-s3cret"), timestamp(
        now + timedelta(hours=1), now + timedelta(hours=2)))
    assert "future" in post(secured, schema, from_the_future).fault_string
    fresh = with_security(token("pmc", "pmc-s3cret"),
                          timestamp(now, now + timedelta(minutes=5)))
    assert post(secured, schema, fresh, headers=VIA_TLS).field("codigoRespuesta") == "1"


@pytest.mark.parametrize("secret", ["PasswordText", "HTTP Basic"])
def test_a_clear_text_password_over_plain_http_is_refused(secured, schema, secret):
    if secret == "PasswordText":
        payload, authorization = with_security(token("pmc", "pmc-s3cret")), None
    else:
        payload, authorization = query(), basic("pmc", "pmc-s3cret")
    before = secured.database.counts()
    reply = post(secured, schema, payload, authorization, plain_http=True)
    assert reply.fault_code == "soap:Client.NotAuthenticated"
    assert reply.fault_string == AUTHENTICATION_FAILED
    assert secured.database.counts() == before
    lines = [line for line in secured.log().splitlines()
             if f"{secret} of pmc over plain HTTP" in line]
    assert lines and all("refused ConsultarDeuda from 127.0.0.1: Client.NotAuthenticated" in line
                         for line in lines)  # one line: operation, address, caller, reason
    assert "pmc-s3cret" not in secured.log()  # never the secret
    # the same credentials, through the trusted TLS proxy
    assert post(secured, schema, payload, authorization,
                headers=VIA_TLS).field("codigoRespuesta") == "1"


def test_a_security_header_for_another_actor_is_not_ours(secured, schema):
    # SOAP 1.1: a header block for another actor is ignored, credentials included.
    payload = with_security(token("pmc", "pmc-s3cret")).replace(
        b'soap:mustUnderstand="1"', b'soap:mustUnderstand="1" soap:actor="urn:someone-else"')
    reply = post(secured, schema, payload)
    assert reply.fault_string == "credentials required: HTTP Basic or a WS-Security " \
                                 "UsernameToken"
    assert post(secured, schema, payload,
                basic("pmc", "pmc-s3cret")).field("codigoRespuesta") == "1"


def test_eco_and_consultar_pago_go_through_the_same_authentication(secured, schema):
    eco = envelope("Eco", [("mensaje", "ping")])
    assert post(secured, schema, eco, action="Eco").fault_code == "soap:Client.NotAuthenticated"
    assert post(secured, schema, eco, basic("web", "web-s3cret"),
                action="Eco").fault_code == "soap:Client.NotAuthorized"
    assert post(secured, schema, eco, basic("pmc", "pmc-s3cret"),
                action="Eco").field("mensaje") == "ping"
    inquiry = envelope("ConsultarPago", [("idEmpresa", "1234"), ("idOperacion", unique("OP"))])
    assert post(secured, schema, inquiry, basic("web", "web-s3cret"),
                action="ConsultarPago").fault_code == "soap:Client.NotAuthorized"
    assert post(secured, schema, inquiry, basic("pmc", "pmc-s3cret"),
                action="ConsultarPago").field("codigoRespuesta") == "8"
