"""Mutual TLS over real HTTPS: callers known by their client certificate's subject, with
the same per-caller operations as passwords. Throwaway CAs and certificates are made here."""
from __future__ import annotations

import ssl

import pytest
import requests

from adapter.errors import ConfigurationError
from support.data import today, unique
from support.pki import issue, name, write
from support.servers import start_server, stop_server
from support.soap import envelope

PMC_SUBJECT = "CN=pmc.example,O=PagoMisCuentas"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    clients_ca = issue(name("Clients CA", "Biller"), None, ca=True)
    rogue_ca = issue(name("Clients CA", "Biller"), None, ca=True)  # same name, other key
    server_ca = issue(name("Server CA"), None, ca=True)
    files = {
        "clients_ca": write(folder, "clients-ca", *clients_ca)[0],
        "server_ca": write(folder, "server-ca", *server_ca)[0],
        "server": write(folder, "server", *issue(name("127.0.0.1"), server_ca, server=True)),
        "pmc": write(folder, "pmc", *issue(name("pmc.example", "PagoMisCuentas"), clients_ca)),
        "stranger": write(folder, "stranger", *issue(name("stranger.example"), clients_ca)),
        "rogue": write(folder, "rogue",
                       *issue(name("pmc.example", "PagoMisCuentas"), rogue_ca)),
    }
    return files


@pytest.fixture(scope="module")
def mtls_server(database_url, pki, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mtls")
    (workdir / "adapter.toml").write_text(f"""
[adapter]
tls_cert = "{pki['server'][0]}"
tls_key = "{pki['server'][1]}"
tls_client_ca = "{pki['clients_ca']}"

[callers.pmc]
certificate = "{PMC_SUBJECT}"
operations = ["ConsultarDeuda", "InformarPago", "ConsultarPago", "Eco"]

[callers.web]
password = "web-s3cret"
operations = ["AltaFactura", "ConsultarDeuda"]
""")
    server = start_server(database_url, workdir, scheme="https", verify=pki["server_ca"],
                          PMC_ADAPTER_CONFIG=str(workdir / "adapter.toml"))
    yield server
    stop_server(server)


def post(server, pki, operation: str, fields, cert=None, auth=None) -> requests.Response:
    return requests.post(server.soap_url, data=envelope(operation, fields), timeout=10,
                         verify=pki["server_ca"], cert=cert, auth=auth,
                         headers={"Content-Type": "text/xml; charset=utf-8",
                                  "SOAPAction": f'"{operation}"'})


def query(customer: str = "C1") -> list:
    return [("idEmpresa", "1234"), ("idCliente", customer)]


def test_a_caller_is_known_by_its_certificate(mtls_server, pki):
    answer = post(mtls_server, pki, "ConsultarDeuda", query(), cert=pki["pmc"])
    assert answer.status_code == 200 and "<tns:codigoRespuesta>1<" in answer.text


def test_a_certificate_caller_calls_only_its_operations(mtls_server, pki):
    customer = unique("C")
    alta = [("idEmpresa", "1234"), ("idCliente", customer), ("idFactura", "F1"),
            ("moneda", "ARS"),
            ("vencimientos", [("vencimiento", [("fecha", today().isoformat()),
                                               ("importe", "1.00")])])]
    refused = post(mtls_server, pki, "AltaFactura", alta, cert=pki["pmc"])
    assert refused.status_code == 500 and "Client.NotAuthorized" in refused.text
    assert mtls_server.database.count("invoices", customer_id=customer) == 0
    accepted = post(mtls_server, pki, "AltaFactura", alta, auth=("web", "web-s3cret"))
    assert "<tns:codigoRespuesta>0<" in accepted.text  # a password caller, no certificate


def test_a_certificate_of_another_ca_fails_the_handshake(mtls_server, pki):
    with pytest.raises(requests.exceptions.SSLError):
        post(mtls_server, pki, "ConsultarDeuda", query(), cert=pki["rogue"])
    assert mtls_server.alive()


def test_a_valid_certificate_of_no_caller_is_not_a_credential(mtls_server, pki):
    before = mtls_server.database.counts()
    answer = post(mtls_server, pki, "ConsultarDeuda", query(unique("C")), cert=pki["stranger"])
    assert answer.status_code == 500 and "Client.NotAuthenticated" in answer.text
    assert mtls_server.database.counts() == before
    assert "stranger" not in answer.text  # the reason is for the log only
    assert "from 127.0.0.1: Client.NotAuthenticated" in mtls_server.log()


def test_no_certificate_and_no_password_is_refused(mtls_server, pki):
    answer = post(mtls_server, pki, "ConsultarDeuda", query())
    assert "Client.NotAuthenticated" in answer.text


def test_certificate_callers_need_a_client_ca(tmp_path):
    from adapter.app import guard_for
    from adapter.config import load_settings
    (tmp_path / "adapter.toml").write_text(f"""
[callers.pmc]
certificate = "{PMC_SUBJECT}"
""")
    with pytest.raises(ConfigurationError, match="tls_client_ca"):
        guard_for(load_settings(tmp_path / "adapter.toml", environ={}))


def test_the_subject_is_written_as_a_distinguished_name():
    from adapter.soap.transport import certificate_subject
    peer = {"subject": ((("commonName", "pmc.example"),),
                        (("organizationName", "Pago, Mis Cuentas"),))}
    assert certificate_subject(peer) == "CN=pmc.example,O=Pago\\, Mis Cuentas"
    assert certificate_subject({}) is None and certificate_subject(None) is None
    assert ssl.CERT_OPTIONAL  # the server asks for a certificate, and needs none
