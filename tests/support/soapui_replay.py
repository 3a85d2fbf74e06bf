"""Replays a SoapUI 5.x project file against a live server, as SoapUI's testrunner would.

SoapUI itself cannot be installed here, so the test suite runs the very file QA
opens in SoapUI. Supported, exactly as SoapUI stores them:

* steps: ``request`` (SOAP request steps) and ``transfer`` (property transfers
  from a response, by XPath, to a test case or project property);
* property expansion: ``${#Project#name}``, ``${#TestSuite#name}``,
  ``${#TestCase#name}``;
* assertions: ``SOAP Response``, ``Schema Compliance`` (against the project's
  own cached WSDL/XSD), ``SOAP Fault Assertion`` (shown as "Not SOAP Fault"),
  ``Not SOAP Fault Assertion`` (shown as "SOAP Fault"), ``XPath Match``,
  ``Simple Contains``, ``Simple NotContains``.

Anything else (Groovy steps or scripts, other assertions, other expansions)
raises :class:`Unsupported`: a project this cannot run fails loudly, never
passes silently.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import requests
import xmlschema
from lxml import etree

CON = "http://eviware.com/soapui/config"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
EXPANSION = re.compile(r"\$\{([^}]*)\}")
DECLARATION = re.compile(r"declare\s+namespace\s+([\w.-]+)\s*=\s*['\"]([^'\"]*)['\"]\s*;")


class Unsupported(Exception):
    """The project uses something this replayer does not implement."""


class StepFailed(AssertionError):
    pass


def _c(name: str) -> str:
    return f"{{{CON}}}{name}"


def _properties(element) -> dict[str, str]:
    holder = element.find(_c("properties"))
    if holder is None:
        return {}
    return {prop.findtext(_c("name")): prop.findtext(_c("value")) or ""
            for prop in holder.iterfind(_c("property"))}


@dataclass
class TestCase:
    suite: str
    name: str
    element: etree._Element
    suite_element: etree._Element


@dataclass
class Project:
    path: Path
    root: etree._Element = field(init=False)

    def __post_init__(self):
        self.root = etree.parse(str(self.path), etree.XMLParser(strip_cdata=False)).getroot()
        self.properties = _properties(self.root)
        interface = self.root.find(_c("interface"))
        self.actions = {op.get("name"): op.get("action")
                        for op in interface.iterfind(_c("operation"))}
        self.schema = self._cached_schema(interface)

    @staticmethod
    def _cached_schema(interface) -> xmlschema.XMLSchema:
        """The XSD from the project's own definition cache (what SoapUI validates with)."""
        parts = [part for part in interface.iterfind(f"{_c('definitionCache')}/{_c('part')}")
                 if part.findtext(_c("type")) == "http://www.w3.org/2001/XMLSchema"]
        if len(parts) != 1:
            raise Unsupported("expected exactly one cached XSD part in the interface")
        return xmlschema.XMLSchema(parts[0].findtext(_c("content")))

    def test_cases(self) -> list[TestCase]:
        return [TestCase(suite.get("name"), case.get("name"), case, suite)
                for suite in self.root.iterfind(_c("testSuite"))
                for case in suite.iterfind(_c("testCase"))]


@dataclass
class Response:
    status: int
    text: str
    envelope: etree._Element | None


class Run:
    """One test case's run: its properties and its steps' responses."""

    def __init__(self, project: Project, case: TestCase, overrides: dict[str, str]):
        self.project, self.case = project, case
        self.scopes = {"Project": {**project.properties, **overrides},
                       "TestSuite": _properties(case.suite_element),
                       "TestCase": _properties(case.element)}
        self.responses: dict[str, Response] = {}
        self.session = requests.Session()

    def expand(self, text: str) -> str:
        def value(match):
            scope, _, name = match.group(1).lstrip("#").partition("#")
            if not match.group(1).startswith("#") or scope not in self.scopes:
                raise Unsupported(f"property expansion ${{{match.group(1)}}}")
            if name not in self.scopes[scope]:
                raise StepFailed(f"property {scope}#{name} is not defined")
            return self.scopes[scope][name]
        return EXPANSION.sub(value, text or "")

    def where(self, step: str, assertion: str | None = None) -> str:
        place = f"test case {self.case.suite!r} / {self.case.name!r}, step {step!r}"
        return place + (f", assertion {assertion!r}" if assertion else "")

    # -- running ----------------------------------------------------------------------

    def run(self) -> None:
        for step in self.case.element.iterfind(_c("testStep")):
            kind, name = step.get("type"), step.get("name")
            if kind == "request":
                self._request(step, name)
            elif kind == "transfer":
                self._transfer(step, name)
            else:
                raise Unsupported(f"{self.where(name)}: step type {kind!r}")

    def _request(self, step, name: str) -> None:
        config = step.find(_c("config"))
        request = config.find(_c("request"))
        operation = config.findtext(_c("operation"))
        if operation not in self.project.actions:
            raise StepFailed(f"{self.where(name)}: operation {operation!r} is not in the interface")
        endpoint = self.expand(request.findtext(_c("endpoint")))
        body = self.expand(request.findtext(_c("request")))
        reply = self.session.post(endpoint, data=body.encode("utf-8"), timeout=60, headers={
            "Content-Type": "text/xml;charset=UTF-8",
            "SOAPAction": f'"{self.project.actions[operation]}"'})
        try:
            envelope = etree.fromstring(reply.content)
        except etree.XMLSyntaxError:
            envelope = None
        response = Response(reply.status_code, reply.text, envelope)
        self.responses[name] = response
        for assertion in request.iterfind(_c("assertion")):
            problem = self._check(assertion, response)
            if problem:
                raise StepFailed(f"{self.where(name, assertion.get('name'))}: {problem}\n"
                                 f"response ({response.status}):\n{response.text[:3000]}")

    def _transfer(self, step, name: str) -> None:
        for transfer in step.find(_c("config")).iterfind(_c("transfers")):
            source_type = transfer.findtext(_c("sourceType"))
            if source_type != "Response":
                raise Unsupported(f"{self.where(name)}: transfer source type {source_type!r}")
            target_step = transfer.findtext(_c("targetStep"))
            scope = {"#TestCase#": "TestCase", "#Project#": "Project",
                     "#TestSuite#": "TestSuite"}.get(target_step)
            if scope is None:
                raise Unsupported(f"{self.where(name)}: transfer target {target_step!r}")
            source = self.responses.get(transfer.findtext(_c("sourceStep")))
            if source is None or source.envelope is None:
                raise StepFailed(f"{self.where(name)}: no XML response from step "
                                 f"{transfer.findtext(_c('sourceStep'))!r} to transfer from")
            found = self._xpath(self.expand(transfer.findtext(_c("sourcePath"))), source.envelope)
            if found is None:
                raise StepFailed(f"{self.where(name)}: transfer {transfer.findtext(_c('name'))!r}"
                                 " found nothing")
            self.scopes[scope][transfer.findtext(_c("targetType"))] = found

    # -- assertions ---------------------------------------------------------------------

    @staticmethod
    def _xpath(expression: str, document) -> str | None:
        namespaces = dict(DECLARATION.findall(expression))
        path = DECLARATION.sub("", expression).strip()
        result = document.xpath(path, namespaces=namespaces)
        if isinstance(result, list):
            if not result:
                return None
            first = result[0]
            return first if isinstance(first, str) else "".join(first.itertext())
        if isinstance(result, float):
            return str(int(result)) if result.is_integer() else str(result)
        return str(result).lower() if isinstance(result, bool) else str(result)

    def _check(self, assertion, response: Response) -> str | None:
        kind = assertion.get("type")
        config = assertion.find(_c("configuration"))
        entry = None
        if response.envelope is not None and response.envelope.tag == f"{{{SOAP_ENV}}}Envelope":
            body = response.envelope.find(f"{{{SOAP_ENV}}}Body")
            entries = [] if body is None else [e for e in body if isinstance(e.tag, str)]
            entry = entries[0] if len(entries) == 1 else None
        is_fault = entry is not None and entry.tag == f"{{{SOAP_ENV}}}Fault"

        if kind == "SOAP Response":
            return None if entry is not None else "the response is not a SOAP 1.1 envelope"
        if kind == "SOAP Fault Assertion":  # SoapUI's "Not SOAP Fault"
            return "the response is a SOAP Fault" if is_fault or entry is None else None
        if kind == "Not SOAP Fault Assertion":  # SoapUI's "SOAP Fault"
            return None if is_fault else "the response is not a SOAP Fault"
        if kind == "Schema Compliance":
            if entry is None:
                return "no SOAP body to validate"
            targets = ([d for d in entry.find("detail") or [] if isinstance(d.tag, str)]
                       if is_fault else [entry])
            for target in targets:
                errors = list(self.project.schema.iter_errors(target))
                if errors:
                    return f"not schema compliant: {errors[0].reason} at {errors[0].path}"
            return None
        if kind == "XPath Match":
            if config.findtext("allowWildcards") == "true":
                raise Unsupported("XPath Match with wildcards")
            if response.envelope is None:
                return "the response is not XML"
            expected = self.expand(config.findtext("content"))
            actual = self._xpath(self.expand(config.findtext("path")), response.envelope)
            return None if actual == expected else f"expected {expected!r}, got {actual!r}"
        if kind in ("Simple Contains", "Simple NotContains"):
            token = self.expand(config.findtext("token"))
            flags = re.IGNORECASE if config.findtext("ignoreCase") == "true" else 0
            pattern = token if config.findtext("useRegEx") == "true" else re.escape(token)
            found = re.search(pattern, response.text, flags) is not None
            if kind == "Simple Contains":
                return None if found else f"{token!r} is not in the response"
            return f"{token!r} is in the response" if found else None
        raise Unsupported(f"assertion type {kind!r}")
