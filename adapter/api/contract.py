"""The JSON contracts, their schemas compiled once: ``openapi.json`` (OpenAPI 3.1), the
API this product serves to PMC, and ``pmc-collection.json``, PMC's collection API as
this product calls it (:mod:`adapter.pmc`; the bundled simulator enforces it too).

Every request body and every answer is validated against its schema with
``jsonschema`` (JSON Schema 2020-12, the dialect of OpenAPI 3.1). The document is
read with its numbers as Decimal, like the requests, so that ``multipleOf: 0.01``
is decided exactly, never through a float.
"""
from __future__ import annotations

import functools
import json
import re
from decimal import Decimal
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SERVED = "openapi.json"  # published at GET /api/v1/openapi.json
COLLECTION = "pmc-collection.json"  # PMC's collection API, as called


@functools.cache
def document_bytes(name: str = SERVED) -> bytes:
    """A contract as published (``GET /api/v1/openapi.json`` for the served one)."""
    return resources.files(__package__).joinpath(name).read_bytes()


@functools.cache
def document(name: str = SERVED) -> dict[str, Any]:
    return json.loads(document_bytes(name), parse_float=Decimal)


@functools.cache
def _regex(pattern: str) -> re.Pattern:
    # JSON Schema's patterns are ECMA 262's, where $ is the end of the string; Python's
    # $ also matches before a final newline ("100\n" would pass "^[0-9]+$")
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator, pattern: str, instance: Any, schema: dict) -> Any:
    if validator.is_type(instance, "string") and not _regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_Validator = validators.extend(Draft202012Validator, {"pattern": _pattern})


@functools.cache
def _validator(schema: str, name: str) -> Draft202012Validator:
    uri = f"urn:pmc-adapter:api:{name}"
    registry = Registry().with_resource(
        uri, Resource.from_contents(document(name), default_specification=DRAFT202012))
    return _Validator({"$ref": f"{uri}#/components/schemas/{schema}"}, registry=registry)


def problem(schema: str, instance: Any, document: str = SERVED) -> str | None:
    """What is wrong with ``instance`` against the ``schema`` of a contract (the served
    one unless ``document`` names another): the most relevant error, naming the field,
    or None when it is valid."""
    error = best_match(_validator(schema, document).iter_errors(instance))
    if error is None:
        return None
    where = "".join(f"[{step}]" if isinstance(step, int) else f".{step}"
                    for step in error.absolute_path).lstrip(".")
    message = error.message
    if where == "access_token":  # the message would quote it: a secret, never repeated
        message = "not a token of 1 to 512 characters"
    if len(message) > 200:  # jsonschema quotes the instance: a long one is cut
        message = message[:200] + "..."
    return f"{where}: {message}" if where else message
