"""Checking a message against the bundled XSD, and putting it in the form the XSD defines.

Two engines compile the same bundled schema: xmlschema, the validator of
record (it loads and checks the schema, and writes the precise message of every
rejection: element path, rule, value), and libxml2 through lxml, about 30 times
faster per message. Which of them decides is the ``validation`` setting:

* ``libxml2`` (the default): libxml2 decides acceptance; a message it refuses
  is judged again by xmlschema, whose message is the one the sender gets.
  ``tests/test_engine_differential.py`` is why this is allowed: thousands of
  messages generated from the schema, and mutations of every kind, get the same
  verdict from both engines but for named gaps, in most of which libxml2 is the
  stricter (xmlschema takes ``1 000.00`` for a decimal). Where libxml2 is laxer
  than the XSD -- a dateTime a fraction of a second past a bound -- it does not
  decide alone: a message with a dateTime in the range's first or last year is
  judged by xmlschema too;
* ``both``: every message is judged by xmlschema too, and accepted only when
  both engines accept it.

A request is put in the form the XSD defines, in the tree itself, so that
what the service reads is the value the validator judged: before validation,
whitespace is collapsed where the value's type says so (decimals, dates,
dateTimes: what every validator does first, done once for all of them); after
it, decimals get their canonical form (``+000012.50`` is ``12.5``), which
spyne reads whatever the lexical form was.
"""
from __future__ import annotations

import functools
import threading
from decimal import Decimal, InvalidOperation

import xmlschema
from lxml import etree

from adapter.config import VALIDATION_ENGINES as ENGINES
from adapter.soap import contract

#: Held while libxml2 compiles a schema (see ContractValidator._compile).
_COMPILING = threading.Lock()


def _path(element: etree._Element) -> str:
    """``/InformarPago/importe``: local names, as a reader of the contract names them."""
    names = []
    while element is not None:
        names.append(etree.QName(element).localname)
        element = element.getparent()
    return "/" + "/".join(reversed(names))


class ContractValidator:
    def __init__(self, schema: xmlschema.XMLSchema | None = None, *, engines: str = "libxml2"):
        if engines not in ENGINES:
            raise ValueError(f"validation must be one of {', '.join(ENGINES)}, not {engines!r}")
        self._schema = schema or contract.schema()
        self._xmlschema_decides = engines == "both"
        self._white_space = _white_space_by_path(self._schema)
        self._with_datetimes = {path[0] for path, (_ws, primitive) in self._white_space.items()
                                if primitive == "dateTime"}
        self._per_thread = threading.local()
        self._per_thread.validator = self._compile()  # this thread's, and libxml2 set up

    def _compile(self) -> etree.XMLSchema:
        # libxml2 compiles a schema outside the GIL, and compiling two at once is not
        # safe: concurrent first requests of a worker's threads made it fail ("the given
        # type is not a built-in type") or crash the worker (SIGSEGV). One at a time.
        with _COMPILING:
            return etree.XMLSchema(etree.parse(self._schema.url, contract.secure_parser()))

    @property
    def _libxml2(self) -> etree.XMLSchema:
        # An lxml validator keeps its error log on itself: one per thread.
        validator = getattr(self._per_thread, "validator", None)
        if validator is None:
            validator = self._per_thread.validator = self._compile()
        return validator

    def first_error(self, element: etree._Element) -> str | None:
        """The first violation in ``element`` (a message root of the contract), with its
        place and offending value; None when the deciding engines accept it."""
        if self._xmlschema_decides:
            return self._xmlschema_error(element) or self._libxml2_error(element)
        if self._libxml2.validate(element):
            # libxml2 compares dateTimes in floating-point seconds and lets a value a
            # fraction of a second past a bound through (tests/test_engine_differential.py):
            # a dateTime in the first or last year of the range goes to xmlschema too
            if self._has_datetime_at_the_edges(element):
                return self._xmlschema_error(element)
            return None
        # xmlschema writes the message; where it accepts (its gap), libxml2's own
        return self._xmlschema_error(element) or self._libxml2_message(element)

    def _has_datetime_at_the_edges(self, element: etree._Element) -> bool:
        if element.tag not in self._with_datetimes:
            return False
        for leaf, (_white_space, primitive) in self._values(element):
            year = leaf.text.strip()[:4]  # the pattern makes it four digits
            if primitive == "dateTime" and (year <= "0001" or year >= "9999"):
                return True
        return False

    def _xmlschema_error(self, element: etree._Element) -> str | None:
        try:
            return self._first_xmlschema_error(element)
        except Exception as error:  # e.g. an xsi:type naming no type: KeyError, not a verdict
            return f"{_path(element)}: not a message of the contract ({error})"

    def _first_xmlschema_error(self, element: etree._Element) -> str | None:
        for error in self._schema.iter_errors(element):
            offending = error.elem if isinstance(error.elem, etree._Element) else element
            message = f"{_path(offending)}: {error.reason}"
            value = (offending.text or "").strip()
            if value and len(offending) == 0:
                message += f" (got {value[:40]!r}{'...' if len(value) > 40 else ''})"
            return message
        return None

    def _libxml2_error(self, element: etree._Element) -> str | None:
        return None if self._libxml2.validate(element) else self._libxml2_message(element)

    def _libxml2_message(self, element: etree._Element) -> str:
        # libxml2's message quotes the offending value: one line, whatever the value holds
        entry = self._libxml2.error_log.last_error
        return " ".join(f"{entry.path or _path(element)}: {entry.message}".split())

    def _values(self, request: etree._Element):
        """Every simple value in ``request`` with its XSD (whiteSpace, primitive type)."""
        stack = [(request, (request.tag,))]
        while stack:
            element, path = stack.pop()
            if len(element):
                stack.extend((child, path + (child.tag,)) for child in element)
            elif element.text and path in self._white_space:
                yield element, self._white_space[path]

    def collapse(self, request: etree._Element) -> None:
        """Collapse whitespace, in place, where the XSD type of a value says so."""
        for element, (white_space, _primitive) in self._values(request):
            if white_space == "collapse":
                element.text = " ".join(element.text.split())

    def canonicalise(self, request: etree._Element) -> None:
        """Give every decimal of a *valid* request its canonical lexical form, in place."""
        for element, (_white_space, primitive) in self._values(request):
            if primitive == "decimal":
                element.text = _canonical_decimal(element.text)


def _canonical_decimal(text: str) -> str:
    try:
        digits = format(Decimal(text), "f")  # valid xs:decimal text has no exponent
    except InvalidOperation:
        return text
    if "." in digits:
        digits = digits.rstrip("0").rstrip(".")
    return digits


def _white_space_by_path(
        schema: xmlschema.XMLSchema) -> dict[tuple[str, ...], tuple[str, str]]:
    """The XSD whiteSpace rule and primitive type of every simple value in the
    contract's messages, by the path of Clark names that leads to it."""
    found: dict[tuple[str, ...], tuple[str, str]] = {}

    def walk(declaration, path: tuple[str, ...]) -> None:
        path = path + (declaration.name,)
        kind = declaration.type
        if kind.is_simple():
            primitive = getattr(kind.primitive_type, "local_name", None)
            found[path] = (kind.white_space or "preserve", primitive)
        else:
            for child in kind.content.iter_elements():
                walk(child, path)

    for declaration in schema.elements.values():
        walk(declaration, ())
    return found


@functools.cache
def contract_validator(engines: str = "libxml2") -> ContractValidator:
    return ContractValidator(engines=engines)
