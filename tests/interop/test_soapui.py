"""The SoapUI project QA uses (tests/soapui/), replayed against a live server:
one test per SoapUI test case, failing with the test case, step and assertion."""
from pathlib import Path

import pytest
from lxml import etree

from adapter.soap import contract
from support.data import unique
from support.soapui_replay import CON, Project, Run, StepFailed, Unsupported

PROJECT = Project(Path(__file__).parent.parent / "soapui" / "pmc-adapter-soapui-project.xml")
CASES = PROJECT.test_cases()
WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP_BINDING = "http://schemas.xmlsoap.org/wsdl/soap/"


@pytest.fixture(scope="module")
def run_id(server):
    # what QA passes as `testrunner.sh -PrunId=...`: fresh data for this run
    return unique("")[:8]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.suite}/{c.name}" for c in CASES])
def test_soapui_case(server, run_id, case):
    Run(PROJECT, case, {"endpoint": server.soap_url, "runId": run_id}).run()


def test_the_project_covers_every_operation_and_response_code():
    requests = [step for step in PROJECT.root.iter(f"{{{CON}}}testStep")
                if step.get("type") == "request"]
    operations = {step.findtext(f"{{{CON}}}config/{{{CON}}}operation") for step in requests}
    assert operations == {"ConsultarDeuda", "InformarPago", "AnularPago", "AltaFactura",
                          "ConsultarPago", "Eco"}
    codes = {a.findtext(f"{{{CON}}}configuration/content") for a in PROJECT.root.iter(f"{{{CON}}}assertion")
             if a.get("name", "").startswith("codigoRespuesta")}
    assert codes == {str(code) for code in range(12)}
    suites = {case.suite for case in CASES}
    assert suites == {"AltaFactura", "ConsultarDeuda", "InformarPago", "AnularPago",
                      "ConsultarPago y Eco", "Entrada invalida", "Flujo completo"}


def test_the_project_interface_has_the_operations_of_the_bundled_wsdl():
    # what SoapUI shows (and requests are sent with): every operation, with its soapAction
    wsdl = etree.parse(str(contract.wsdl_path())).getroot()
    bound = {op.get("name"): op.find(f"{{{SOAP_BINDING}}}operation").get("soapAction")
             for op in wsdl.iterfind(f"{{{WSDL}}}binding/{{{WSDL}}}operation")}
    assert "AnularPago" in bound
    assert PROJECT.actions == bound


def test_the_project_caches_the_bundled_contract():
    parts = {part.findtext(f"{{{CON}}}type"): part.findtext(f"{{{CON}}}content")
             for part in PROJECT.root.iter(f"{{{CON}}}part")}
    bundled_xsd = contract.xsd_path().read_text().split("?>", 1)[1].strip()
    bundled_wsdl = contract.wsdl_path().read_text().split("?>", 1)[1].strip()
    stale = "the SoapUI project's contract cache is stale: run scripts/sync-soapui-contract.py"
    assert parts["http://www.w3.org/2001/XMLSchema"] == bundled_xsd, stale
    assert parts["http://schemas.xmlsoap.org/wsdl/"] == bundled_wsdl, stale


def test_the_replayer_fails_loudly_on_what_it_cannot_run(server, tmp_path):
    text = (Path(__file__).parent.parent / "soapui" / "pmc-adapter-soapui-project.xml").read_text()
    groovy = text.replace('type="Simple NotContains"', 'type="Script Assertion"', 1)
    path = tmp_path / "groovy.xml"
    path.write_text(groovy)
    project = Project(path)
    with pytest.raises(Unsupported, match="Script Assertion"):
        for case in project.test_cases():
            Run(project, case, {"endpoint": server.soap_url, "runId": unique("")[:8]}).run()


def test_a_broken_expectation_names_case_step_and_assertion(server):
    case = next(c for c in CASES if c.name == "Cliente inexistente (1)")
    content = next(a for a in case.element.iter(f"{{{CON}}}assertion")
                   if a.get("name") == "codigoRespuesta = 1").find(f"{{{CON}}}configuration/content")
    content.text = "0"
    try:
        with pytest.raises(StepFailed) as failure:
            Run(PROJECT, case, {"endpoint": server.soap_url, "runId": unique("")[:8]}).run()
    finally:
        content.text = "1"
    assert ("test case 'ConsultarDeuda' / 'Cliente inexistente (1)', step 'ConsultarDeuda', "
            "assertion 'codigoRespuesta = 1': expected '0', got '1'") in str(failure.value)
