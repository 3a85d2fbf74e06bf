"""The bundled WSDL against the WS-I Basic Profile 1.1 rules that matter to importers
(wsimport, svcutil, SAP, SoapUI). Each test names the rule it checks."""
import pytest
from lxml import etree

from adapter.soap import contract

NS = {"w": "http://schemas.xmlsoap.org/wsdl/", "s": "http://schemas.xmlsoap.org/wsdl/soap/",
      "xs": "http://www.w3.org/2001/XMLSchema"}
HTTP_TRANSPORT = "http://schemas.xmlsoap.org/soap/http"


@pytest.fixture(scope="module", params=["pmc-adapter.wsdl", "legacy-erp.wsdl"])
def wsdl(request):
    return etree.parse(str(contract.wsdl_dir() / request.param)).getroot()


def local(qname: str) -> str:
    return qname.rpartition(":")[2]


def messages(wsdl):
    return {m.get("name"): m for m in wsdl.iterfind("w:message", NS)}


def test_R2003_schema_imports_only_inside_xsd_schema_in_types(wsdl):
    for imported in wsdl.iter(f"{{{NS['xs']}}}import"):
        assert imported.getparent().tag == f"{{{NS['xs']}}}schema"
        assert imported.getparent().getparent().tag == f"{{{NS['w']}}}types"


def test_R2105_every_types_schema_has_a_target_namespace_or_only_imports(wsdl):
    for schema in wsdl.iterfind("w:types/xs:schema", NS):
        children = {etree.QName(c).localname for c in schema if isinstance(c.tag, str)}
        assert schema.get("targetNamespace") or children <= {"import", "annotation"}


def test_R2401_R2702_binding_is_soap_over_http(wsdl):
    for binding in wsdl.iterfind("w:binding/s:binding", NS):
        assert binding.get("transport") == HTTP_TRANSPORT


def test_R2705_document_literal_only(wsdl):
    for binding in wsdl.iterfind("w:binding", NS):
        assert binding.find("s:binding", NS).get("style") in (None, "document")
        for operation in binding.iterfind("w:operation/s:operation", NS):
            assert operation.get("style") in (None, "document")
        for body in binding.iterfind(".//s:body", NS):
            assert body.get("use") == "literal"  # R2706: never encoded
            assert body.get("namespace") is None  # R2716: doc-literal takes no namespace


def test_R2201_R2210_R2204_one_body_part_defined_by_element(wsdl):
    by_name = messages(wsdl)
    for op in wsdl.iterfind("w:portType/w:operation", NS):
        for direction in ("w:input", "w:output"):
            parts = by_name[local(op.find(direction, NS).get("message"))].findall("w:part", NS)
            assert len(parts) == 1, op.get("name")
            assert parts[0].get("element") and not parts[0].get("type")


def test_R2710_operations_have_unique_wire_signatures(wsdl):
    by_name = messages(wsdl)
    signatures = [by_name[local(op.find("w:input", NS).get("message"))]
                  .find("w:part", NS).get("element")
                  for op in wsdl.iterfind("w:portType/w:operation", NS)]
    assert len(signatures) == len(set(signatures))


def test_R2718_binding_has_the_operations_of_its_port_type(wsdl):
    port_ops = {op.get("name") for op in wsdl.iterfind("w:portType/w:operation", NS)}
    bound_ops = {op.get("name") for op in wsdl.iterfind("w:binding/w:operation", NS)}
    assert port_ops == bound_ops


def test_R2744_R2745_soap_action_is_set_and_names_the_operation(wsdl):
    for op in wsdl.iterfind("w:binding/w:operation", NS):
        action = op.find("s:operation", NS).get("soapAction")
        assert action and action.rpartition("/")[2] == op.get("name")


def test_R2205_R2721_R2754_faults_are_declared_with_elements_and_named(wsdl):
    by_name = messages(wsdl)
    for op in wsdl.iterfind("w:portType/w:operation", NS):
        for fault in op.iterfind("w:fault", NS):
            (part,) = by_name[local(fault.get("message"))].findall("w:part", NS)
            assert part.get("element"), "R2205: a fault part is defined by element"
    for fault in wsdl.iterfind("w:binding/w:operation/w:fault", NS):
        soap_fault = fault.find("s:fault", NS)
        assert soap_fault is not None and soap_fault.get("use") == "literal"
        assert soap_fault.get("name") == fault.get("name"), "R2721/R2754"


def test_our_operations_all_declare_the_falla_fault():
    wsdl = etree.parse(str(contract.wsdl_path())).getroot()
    for op in wsdl.iterfind("w:portType/w:operation", NS):
        assert [f.get("name") for f in op.iterfind("w:fault", NS)] == ["falla"]
