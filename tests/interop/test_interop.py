"""Other stacks import the live WSDL and run the end-to-end flow: Java (wsimport, JAX-WS RI),
Node (node-soap), C++ (gSOAP's wsdl2h + soapcpp2) and Python's suds. Each skips, with the
reason, where its tools are missing; CI installs them (.ci/run) and requires them.

The served WSDL imports its schema by an absolute URL (``/soap?xsd=pmc-adapter.xsd``):
gSOAP's wsdl2h and suds are checked to fetch exactly that URL."""
import os
import shutil
import subprocess
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adapter.domain.calendar import BUSINESS_TZ
from adapter.domain.model import Currency, DueDate, Invoice, Origin
from support.data import today, unique

INTEROP = Path(__file__).parent
REQUIRE = os.environ.get("PMC_ADAPTER_TEST_REQUIRE_INTEROP") == "1"  # CI: never skip
JAXWS_RUNTIME = Path("/usr/share/java/jaxws-rt.jar")  # Debian's jaxws/libjaxws-java
GSOAP_HEADER = Path("/usr/include/stdsoap2.h")  # Debian's libgsoap-dev (with libgsoap++)
GSOAP_IMPORT = Path("/usr/share/gsoap/import")  # Debian's gsoap: what soapcpp2 may #import
XSD_URL_SUFFIX = "?xsd=pmc-adapter.xsd"


def skip(reason: str):
    if REQUIRE:
        pytest.fail(reason + " (PMC_ADAPTER_TEST_REQUIRE_INTEROP=1)")
    pytest.skip(reason)


def run(command, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, (f"{' '.join(map(str, command))} failed:\n"
                                    f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


# A generated client depends on the WSDL alone: each is generated (and compiled) once, from
# the first server's live WSDL, and runs against every server (SQLite, PostgreSQL).
_GENERATED: dict[str, tuple[str, Path]] = {}  # toolkit -> (the WSDL it came from, its output)


def generated_once(toolkit: str, wsdl: str, workdir: Path, generate) -> tuple[str, Path]:
    if toolkit not in _GENERATED:
        generate(workdir)
        _GENERATED[toolkit] = (wsdl, workdir)
    return _GENERATED[toolkit]


def test_java_client_generated_by_wsimport_runs_the_flow(server, tmp_path):
    missing = [tool for tool in ("wsimport", "javac", "java") if shutil.which(tool) is None]
    if missing or not JAXWS_RUNTIME.exists():
        skip(f"needs wsimport, javac, java and {JAXWS_RUNTIME} "
                    f"(Debian package jaxws); missing: {missing or [str(JAXWS_RUNTIME)]}")
    wsdl = server.soap_url + "?wsdl"

    def generate(workdir: Path) -> None:
        generated, classes = workdir / "generated", workdir / "classes"
        generated.mkdir()
        classes.mkdir()
        run(["wsimport", "-keep", "-Xnocompile", "-p", "org.pmcadapter.client",
             "-d", str(generated), wsdl])
        sources = sorted(str(path) for path in generated.rglob("*.java"))
        run(["javac", "-cp", str(JAXWS_RUNTIME), "-d", str(classes), *sources,
             str(INTEROP / "java" / "Flow.java")])

    _, workdir = generated_once("java", wsdl, tmp_path, generate)
    # JAX-WS reads the WSDL it is given at run time: this server's, with its address
    result = run(["java", "-cp", f"{workdir / 'classes'}:{JAXWS_RUNTIME}", "Flow", wsdl,
                  unique("J")])
    assert "JAVA FLOW PASSED: 21 checks" in result.stdout


def test_node_soap_client_runs_the_flow(server):
    node_dir = INTEROP / "node"
    if shutil.which("node") is None or not (node_dir / "node_modules" / "soap").is_dir():
        skip("needs node and `npm ci` in tests/interop/node (scripts/test does it "
                    "where npm is installed)")
    result = run(["node", "flow.js", server.soap_url + "?wsdl", unique("N")], cwd=node_dir)
    assert "NODE FLOW PASSED: 20 checks" in result.stdout


def open_base_invoice(customer: str, day: date) -> Invoice:
    """B-0001 in the billing base: 2750.40 due on day+5 (so due today), 2890.00 on day+35."""
    return Invoice("1234", customer, "B-0001", Currency.ARS,
                   (DueDate(day + timedelta(5), Decimal("2750.40")),
                    DueDate(day + timedelta(35), Decimal("2890.00"))),
                   Origin.BILLING_BASE, description="Factura B-0001")


def test_gsoap_client_generated_by_wsdl2h_runs_the_flow(server, billing_base, tmp_path):
    missing = [tool for tool in ("wsdl2h", "soapcpp2", "g++") if shutil.which(tool) is None]
    missing += [str(path) for path in (GSOAP_HEADER,) if not path.exists()]
    if missing:
        skip(f"needs wsdl2h and soapcpp2 (Debian package gsoap), g++, and {GSOAP_HEADER} "
             f"with libgsoap++ (libgsoap-dev); missing: {missing}")
    customer, day = unique("G"), today()
    billing_base(open_base_invoice(customer, day))
    wsdl = server.soap_url + "?wsdl"

    def generate(workdir: Path) -> None:
        # wsdl2h reads the live URL (not a file), so it must follow the served import itself.
        imported = run(["wsdl2h", "-t", str(INTEROP / "gsoap" / "typemap.dat"), "-o", "pmc.h",
                        wsdl], cwd=workdir)
        assert f"'{server.soap_url}{XSD_URL_SUFFIX}'" in imported.stdout + imported.stderr
        run(["soapcpp2", "-j", "-C", "-L", "-x", f"-I{GSOAP_IMPORT}", "pmc.h"], cwd=workdir)
        run(["g++", "-O0", "-I.", "-o", "flow", str(INTEROP / "gsoap" / "flow.cpp"),
             "soapC.cpp", "soapServicioEmpresaSoap11Proxy.cpp", "-lgsoap++"], cwd=workdir)

    source, workdir = generated_once("gsoap", wsdl, tmp_path, generate)
    if source == wsdl:  # generated from this server: its endpoint is the WSDL's soap:address
        result = run([str(workdir / "flow"), customer, day.isoformat()])
    else:
        result = run([str(workdir / "flow"), customer, day.isoformat(), server.soap_url])
    assert f"endpoint: {server.soap_url}\n" in result.stdout, "soap:address is the server's URL"
    assert "GSOAP FLOW PASSED: 17 checks" in result.stdout


def test_suds_client_runs_the_flow(server, billing_base):
    try:
        from suds import WebFault
        from suds.client import Client
        from suds.transport.http import HttpTransport
    except ImportError:
        skip("needs suds (PyPI suds-community, in setup.cfg's test extra; scripts/test "
             "installs it)")

    fetched = []

    class Recording(HttpTransport):
        def open(self, request):  # WSDL and schema downloads (not SOAP calls)
            fetched.append(request.url)
            return super().open(request)

    client = Client(server.soap_url + "?wsdl", transport=Recording(), cache=None)
    assert fetched == [server.soap_url + "?wsdl", server.soap_url + XSD_URL_SUFFIX]
    assert client.wsdl.services[0].ports[0].location == server.soap_url
    service, customer, day = client.service, unique("S"), today()
    billing_base(open_base_invoice(customer, day))

    # suds types by the schema only values of built-in types: those of the contract's
    # restricted types (CodigoRespuesta, Importe...) come back as text.
    answer = service.ConsultarDeuda(idEmpresa="1234", idCliente=customer)
    assert int(answer.codigoRespuesta) == 0
    [listed] = answer.facturas.factura
    assert (listed.idFactura, Decimal(listed.importeAPagar), listed.origen) == (
        "B-0001", Decimal("2750.40"), "BASE")

    dues = client.factory.create("Vencimientos")
    first = client.factory.create("Vencimiento")
    first.fecha, first.importe = day + timedelta(10), "1500.25"  # xs:date: suds formats it
    dues.vencimiento.append(first)
    answer = service.AltaFactura(idEmpresa="1234", idCliente=customer, idFactura="S-0001",
                                 moneda="ARS", vencimientos=dues, descripcion="Cuota suds")
    assert int(answer.codigoRespuesta) == 0

    answer = service.ConsultarDeuda(idEmpresa="1234", idCliente=customer, idFactura="S-0001")
    assert int(answer.codigoRespuesta) == 0
    [listed] = answer.facturas.factura
    assert (listed.idFactura, Decimal(listed.importeAPagar), listed.origen) == (
        "S-0001", Decimal("1500.25"), "ALTA")

    # Likewise on the way out: suds sends a datetime given for fechaPago (a restriction of
    # xs:dateTime) as str(datetime), with a space for the T, which the schema refuses.
    # Give it the lexical form: now in Buenos Aires, with its offset.
    paid_at = datetime.now(BUSINESS_TZ).replace(microsecond=0).isoformat()
    payment = dict(idEmpresa="1234", idOperacion=f"SUDS-{customer}", idCliente=customer,
                   idFactura="S-0001", importe="1500.25", moneda="ARS", fechaPago=paid_at,
                   canal="SUDS", idConsulta=answer.idConsulta)
    paid = service.InformarPago(**payment)
    assert int(paid.codigoRespuesta) == 0 and paid.idRecibo
    replay = service.InformarPago(**payment)
    assert (int(replay.codigoRespuesta), replay.idRecibo) == (0, paid.idRecibo)

    other = service.InformarPago(**{**payment, "idOperacion": f"SUDS-B-{customer}",
                                    "idFactura": "B-0001", "importe": "2750.40",
                                    "idConsulta": None})
    assert int(other.codigoRespuesta) == 0 and other.idRecibo != paid.idRecibo
    answer = service.ConsultarDeuda(idEmpresa="1234", idCliente=customer)
    assert int(answer.codigoRespuesta) == 2

    with pytest.raises(WebFault) as raised:
        service.ConsultarDeuda(idEmpresa="9999", idCliente=customer)
    assert str(raised.value.fault.faultcode).endswith("Client.UnknownEmpresa")
    assert raised.value.fault.detail.falla.codigo == "Client.UnknownEmpresa"
