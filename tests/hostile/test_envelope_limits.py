"""libxml2's own limits, as the client hears of them: in our words, never libxml2's advice.

libxml2 2.14 (lxml 6) stops at its own depth limit (256 without XML_PARSE_HUGE) inside
the first chunk it parses, before iterparse yields the element that trips our cap; the
gateway must still say the document is too deep, with its own limit.
"""
import pytest
from lxml import etree

from adapter.config import LIBXML2_MAX_DEPTH
from adapter.errors import DocumentTooDeep, MalformedXml, RequestTooLarge
from adapter.soap.envelope import parse


def refusal(text, max_depth=32, max_elements=10**9):
    with pytest.raises((DocumentTooDeep, MalformedXml, RequestTooLarge)) as caught:
        parse(text, max_depth=max_depth, max_elements=max_elements)
    return caught.value


@pytest.mark.parametrize("max_depth, levels", [
    (max_depth, levels) for max_depth in (32, LIBXML2_MAX_DEPTH)
    for levels in (33, LIBXML2_MAX_DEPTH + 1, 5000, 100_000) if levels > max_depth])
def test_a_document_too_deep_is_refused_as_too_deep_with_our_limit(levels, max_depth):
    error = refusal("<a>" * levels + "</a>" * levels, max_depth=max_depth)
    assert isinstance(error, DocumentTooDeep), (type(error), str(error))
    assert f"the limit is {max_depth}" in str(error)
    assert "XML_PARSE_HUGE" not in str(error)


def test_the_deepest_document_the_settings_allow_is_parsed():
    levels = LIBXML2_MAX_DEPTH
    root = parse("<a>" * levels + "</a>" * levels, max_depth=levels, max_elements=10**6)
    assert root.tag == "a"


@pytest.mark.parametrize("document", [
    '<a b="' + "x" * 10_000_001 + '"/>',  # an attribute value over libxml2's buffer limit
    "<a>" + "x" * 10_000_001 + "</a>",  # a text node over libxml2's limit
], ids=["huge attribute", "huge text"])
def test_libxml2_resource_limits_are_a_request_too_large_without_its_advice(document):
    error = refusal(document)
    assert isinstance(error, RequestTooLarge), (type(error), str(error))
    assert "XML_PARSE_HUGE" not in str(error) and "\n" not in str(error)


def test_a_malformed_document_keeps_the_parsers_diagnosis_on_one_line():
    error = refusal("<a>" + "&#10;" * 3 + "<b></a>")
    assert isinstance(error, MalformedXml)
    assert "tag mismatch" in str(error) and "\n" not in str(error)
    assert "<string>" not in str(error)  # lxml's own source name is no business of the client


def test_no_libxml2_version_tells_a_parser_option_to_the_client():
    """Whatever message this libxml2 gives for its limits, the client never reads the option."""
    assert etree.LIBXML_VERSION >= (2, 9)
    for text in ("<a>" * 3000, "<" + "n" * 60_000 + "/>"):
        assert "XML_PARSE_HUGE" not in str(refusal(text))
