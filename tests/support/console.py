"""A server with the back office on (two operators, one SOAP caller), for the console's
HTTP and browser tests."""
from __future__ import annotations

import contextlib
import re
from datetime import timedelta
from pathlib import Path

import requests
import zeep
from zeep.transports import Transport

from adapter.passwords import hash_password
from support.data import today
from support.servers import start_server, stop_server

PASSWORDS = {"ana": "ana-resolves-0042", "vic": "vic-only-looks-77"}
CALLER = ("pmc", "caller-Pw-5150x")
HASHES = {name: hash_password(password) for name, password in PASSWORDS.items()}


def config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "console.toml"
    path.write_text(f"""
[adapter]
billers = ["1234"]
tls_at_proxy = true   # HTTP Basic over loopback's plain HTTP, as behind a TLS proxy
{extra}
[callers.{CALLER[0]}]
password = "{CALLER[1]}"
[operators.ana]
password_hash = "{HASHES['ana']}"
role = "resolver"
[operators.vic]
password_hash = "{HASHES['vic']}"
""")
    return path


@contextlib.contextmanager
def console_server(database_url: str, tmp_path: Path, extra: str = ""):
    server = start_server(database_url, tmp_path,
                          PMC_ADAPTER_CONFIG=str(config(tmp_path, extra)),
                          PMC_ADAPTER_WORKERS="2")
    try:
        yield server
    finally:
        stop_server(server)


def soap_client(server) -> zeep.Client:
    session = requests.Session()
    session.auth = CALLER
    return zeep.Client(server.soap_url + "?wsdl", transport=Transport(session=session))


def observed_payment(pmc: zeep.Client, customer: str, amount: str = "150.00"):
    """An invoice created online, and a payment naming a mistyped invoice of the same
    client: observed (3), waiting for a person. Returns the notice's answer."""
    answer = pmc.service.AltaFactura(
        idEmpresa="1234", idCliente=customer, idFactura=f"{customer}-F1", moneda="ARS",
        vencimientos={"vencimiento": [{"fecha": today() + timedelta(20), "importe": amount}]})
    assert answer.codigoRespuesta == 0
    notice = pmc.service.InformarPago(
        idEmpresa="1234", idOperacion=f"OP-{customer}", idCliente=customer,
        idFactura=f"{customer}-TYPO", importe=amount, moneda="ARS",
        fechaPago=f"{today()}T09:00:00-03:00")
    assert notice.codigoRespuesta == 3
    return notice


def login(server, name: str, password: str | None = None) -> requests.Session:
    """A browser-like session signed in as ``name`` (raises if the login fails)."""
    browser = requests.Session()
    form = browser.get(server.base_url + "/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    signed = browser.post(server.base_url + "/console/login", allow_redirects=False,
                          data={"csrf": token, "username": name,
                                "password": password or PASSWORDS[name]})
    assert signed.status_code == 303, signed.text
    return browser


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)
