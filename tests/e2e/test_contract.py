"""The published contract: bundled files, what the server serves, and spyne's agreement with it."""

import pytest
import requests
import xmlschema
from lxml import etree
from spyne.interface.wsdl import Wsdl11

from adapter.soap import contract
from adapter.soap.service import spyne_application
from support.servers import start_server, stop_server

WSDL = "http://schemas.xmlsoap.org/wsdl/"
XSD = "http://www.w3.org/2001/XMLSchema"


def spyne_wsdl() -> etree._Element:
    document = Wsdl11(spyne_application(billing=None).interface)
    document.build_interface_document("http://localhost/soap")
    return etree.fromstring(document.get_interface_document())


def shape(element) -> tuple:
    """What a message element means on the wire, whatever its types are named:
    name, occurrences, and for simple content the primitive type and every facet."""
    kind = element.type
    if kind.is_simple():
        facets = tuple(sorted((etree.QName(name).localname, str(getattr(facet, "value", "")))
                              for name, facet in kind.facets.items() if name is not None))
        content = ("simple", kind.primitive_type.local_name, facets,
                   tuple(kind.patterns.regexps) if kind.patterns else (),
                   tuple(kind.enumeration or ()))
    else:
        content = ("complex", tuple(shape(child) for child in kind.content.iter_elements()))
    return element.local_name, element.min_occurs, element.max_occurs, content


def test_spyne_and_the_bundled_contract_have_the_same_operations_and_messages():
    spyne = spyne_wsdl()
    ns = {"w": WSDL}
    spyne_ops = {op.get("name"): (op.find("w:input", ns).get("message").split(":")[1],
                                  op.find("w:output", ns).get("message").split(":")[1])
                 for op in spyne.iterfind("w:portType/w:operation", ns)}
    spyne_elements = {m.get("name"): m.find("w:part", ns).get("element").split(":")[1]
                      for m in spyne.iterfind("w:message", ns)}
    spyne_view = {name: (spyne_elements[request], spyne_elements[response])
                  for name, (request, response) in spyne_ops.items()}
    bundled_view = {op.name: (etree.QName(op.request).localname,
                              etree.QName(op.response).localname)
                    for op in contract.operations().values()}
    assert spyne_view == bundled_view == {
        "ConsultarDeuda": ("ConsultarDeuda", "ConsultarDeudaResponse"),
        "InformarPago": ("InformarPago", "InformarPagoResponse"),
        "AnularPago": ("AnularPago", "AnularPagoResponse"),
        "AltaFactura": ("AltaFactura", "AltaFacturaResponse"),
        "ConsultarPago": ("ConsultarPago", "ConsultarPagoResponse"),
        "Eco": ("Eco", "EcoResponse"),
    }
    spyne_actions = {op.get("name"): op.find(f"{{{contract.WSDL_SOAP_NS}}}operation")
                     .get("soapAction") for op in spyne.iterfind("w:binding/w:operation", ns)}
    assert spyne_actions == {op.name: op.soap_action for op in contract.operations().values()}


def test_spyne_messages_have_exactly_the_bundled_structure_and_facets():
    (spyne_schema_element,) = spyne_wsdl().iterfind(f"{{{WSDL}}}types/{{{XSD}}}schema")
    spyne_schema = xmlschema.XMLSchema(etree.tostring(spyne_schema_element).decode())
    bundled = contract.schema()
    for op in contract.operations().values():
        for message in (op.request, op.response):
            assert shape(spyne_schema.elements[etree.QName(message).localname]) == \
                shape(bundled.elements[etree.QName(message).localname]), message


def test_shape_comparison_notices_a_difference():
    # The agreement test above is only worth something if a drift would show.
    bundled = contract.schema()
    changed = xmlschema.XMLSchema(contract.xsd_path().read_text().replace(
        '<xs:maxLength value="19"/>', '<xs:maxLength value="18"/>'))
    assert shape(changed.elements["ConsultarDeuda"]) != shape(bundled.elements["ConsultarDeuda"])


def test_response_codes_are_exactly_0_to_11_on_both_sides():
    (spyne_schema_element,) = spyne_wsdl().iterfind(f"{{{WSDL}}}types/{{{XSD}}}schema")
    spyne_schema = xmlschema.XMLSchema(etree.tostring(spyne_schema_element).decode())
    for schema in (spyne_schema, contract.schema()):
        code = next(schema.elements["InformarPagoResponse"].type.content.iter_elements())
        assert code.local_name == "codigoRespuesta"
        assert [value for value in range(-1, 13) if code.type.is_valid(str(value))] == \
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    # and the agreement test would see a drift in the list
    bundled = contract.schema()
    changed = xmlschema.XMLSchema(contract.xsd_path().read_text().replace(
        '<xs:enumeration value="11"/>', '<xs:enumeration value="12"/>'))
    assert shape(changed.elements["InformarPagoResponse"]) != \
        shape(bundled.elements["InformarPagoResponse"])


def test_served_wsdl_is_the_bundled_one_with_only_the_addresses_adjusted(server):
    response = requests.get(server.soap_url + "?wsdl", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/xml")
    served = etree.fromstring(response.content)
    address = served.find(f".//{{{contract.WSDL_SOAP_NS}}}address")
    assert address.get("location") == server.soap_url
    schema_import = served.find(f".//{{{XSD}}}import")
    assert schema_import.get("schemaLocation") == server.soap_url + "?xsd=pmc-adapter.xsd"
    bundled = etree.parse(str(contract.wsdl_path())).getroot()
    address.set("location", bundled.find(f".//{{{contract.WSDL_SOAP_NS}}}address").get("location"))
    schema_import.set("schemaLocation", "../xsd/pmc-adapter.xsd")
    assert etree.tostring(served, method="c14n") == etree.tostring(bundled, method="c14n")


def test_the_served_wsdl_imports_by_absolute_urls_that_serve_the_bundled_schema(server):
    served = etree.fromstring(requests.get(server.soap_url + "?wsdl", timeout=10).content)
    for schema_import in served.iter(f"{{{XSD}}}import"):
        location = schema_import.get("schemaLocation")
        assert location.startswith(server.soap_url + "?xsd=")
        assert requests.get(location, timeout=10).content == contract.xsd_path().read_bytes()
    assert requests.get(server.soap_url + "?xsd=../setup.cfg", timeout=10).status_code == 404


@pytest.mark.parametrize("peer, expected", [
    ("127.0.0.0/8", "https://pmc.example.com/soap"),   # the proxy is trusted
    ("10.0.0.0/8", None),                              # it is not: headers ignored
])
def test_forwarded_headers_name_the_address_only_from_a_trusted_proxy(database_url, tmp_path,
                                                                      peer, expected):
    server = start_server(database_url, tmp_path, PMC_ADAPTER_TRUSTED_PROXIES=peer)
    try:
        served = etree.fromstring(requests.get(server.soap_url + "?wsdl", timeout=10, headers={
            "X-Forwarded-Proto": "https", "X-Forwarded-Host": "pmc.example.com"}).content)
        location = served.find(f".//{{{contract.WSDL_SOAP_NS}}}address").get("location")
        assert location == (expected or server.soap_url)
        assert served.find(f".//{{{XSD}}}import").get("schemaLocation") == \
            location + "?xsd=pmc-adapter.xsd"
    finally:
        stop_server(server)


@pytest.mark.parametrize("host", ["evil.example/<x>", "evil.example:99999", "-evil.example",
                                  "evil..example", "evil.example:80:80", "[evil]:80",
                                  "evil.example:0", "ev il.example"])
def test_a_made_up_host_header_is_not_advertised(server, host):
    response = requests.get(server.soap_url + "?wsdl", timeout=10, headers={"Host": host})
    location = etree.fromstring(response.content).find(
        f".//{{{contract.WSDL_SOAP_NS}}}address").get("location")
    assert "evil" not in location and location.endswith("/soap")


def test_an_address_from_the_host_header_is_marked_as_varying_with_it(server):
    response = requests.get(server.soap_url + "?wsdl", timeout=10,
                            headers={"Host": "evil.example:666"})
    assert b"http://evil.example:666/soap" in response.content  # valid: it is the client's
    assert "Host" in response.headers["Vary"]  # ... and no cache gives it to another


def test_public_url_is_what_the_wsdl_advertises_whatever_the_request_says(database_url,
                                                                         tmp_path):
    public = "https://pmc.example.com/pmc/soap"
    server = start_server(database_url, tmp_path, PMC_ADAPTER_PUBLIC_URL=public,
                          PMC_ADAPTER_TRUSTED_PROXIES="127.0.0.0/8")
    try:
        for headers in ({}, {"Host": "evil.example:666"},
                        {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}):
            response = requests.get(server.soap_url + "?wsdl", timeout=10, headers=headers)
            served = etree.fromstring(response.content)
            assert served.find(f".//{{{contract.WSDL_SOAP_NS}}}address").get(
                "location") == public
            assert served.find(f".//{{{XSD}}}import").get("schemaLocation") == \
                public + "?xsd=pmc-adapter.xsd"
            assert b"evil" not in response.content and "Vary" not in response.headers
    finally:
        stop_server(server)


def test_served_schema_is_the_bundled_file(server):
    response = requests.get(server.base_url + "/xsd/pmc-adapter.xsd", timeout=10)
    assert response.content == contract.xsd_path().read_bytes()
    # and the WSDL's relative import resolves to it over HTTP, also as Java resolves it
    dotted = requests.get(server.base_url + "/../xsd/pmc-adapter.xsd", timeout=10)
    assert dotted.content == response.content
    assert requests.get(server.base_url + "/wsdl/pmc-adapter.wsdl", timeout=10).status_code == 200


def test_the_bundled_wsdl_loads_from_disk_in_zeep():
    import zeep
    client = zeep.Client(str(contract.wsdl_path()))
    assert {op for op in client.service._binding._operations} == {
        "ConsultarDeuda", "InformarPago", "AnularPago", "AltaFactura", "ConsultarPago", "Eco"}
