"""What makes a generated AsyncAPI document correct, checked offline.

Two layers: the official AsyncAPI 3.0.0 JSON schema (vendored in ``schema/``, see its
README), and what that schema cannot express but the specification requires: every
``$ref`` resolves inside the document, an operation's messages are messages of its own
channel, a channel's parameters are exactly the placeholders of its address, component keys
keep to the key pattern, and the document survives a JSON round trip unchanged.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# No stubs in the dev extras (types-jsonschema would add them): typed as Any until then.
import jsonschema  # type: ignore[import-untyped, unused-ignore]
import jsonschema.protocols  # type: ignore[import-untyped, unused-ignore]
import jsonschema.validators  # type: ignore[import-untyped, unused-ignore]

SCHEMA_PATH = Path(__file__).parent / "schema" / "asyncapi-3.0.0.json"
_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")
_EXPRESSION = re.compile(r"{([^{}]+)}")


@functools.cache
def official_validator() -> jsonschema.protocols.Validator:
    """A validator for the vendored schema (draft 07, formats checked, no network)."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def _refs(node: Any, path: str = "#") -> Iterator[tuple[str, str]]:
    """Every ``(where, $ref)`` in ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield path, value
            else:
                yield from _refs(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _refs(item, f"{path}/{index}")


def resolve(document: Any, ref: str) -> Any:
    """The value a local ``$ref`` (``#/a/b``) points at.

    Raises:
        LookupError: it points at nothing, or it is not a local reference.
    """
    if not ref.startswith("#/"):
        raise LookupError(f"{ref!r} is not a local reference")
    node = document
    for token in ref[2:].split("/"):
        key = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise LookupError(f"{ref!r} points at nothing")
    return node


def problems(document: Any) -> list[str]:
    """Everything wrong with ``document``, one line each; empty when it is correct."""
    found = [
        f"schema: /{'/'.join(map(str, error.absolute_path))}: {error.message[:300]}"
        for error in official_validator().iter_errors(document)
    ]
    if json.loads(json.dumps(document)) != document:
        found.append("json: the document changes in a JSON round trip")
    for where, ref in _refs(document):
        try:
            resolve(document, ref)
        except LookupError as error:
            found.append(f"ref: {where}: {error}")
    channels = document.get("channels", {}) if isinstance(document, dict) else {}
    for name, operation in (document.get("operations") or {}).items():
        channel_ref = operation.get("channel", {}).get("$ref", "")
        for message in operation.get("messages", []):
            if not message.get("$ref", "").startswith(channel_ref + "/messages/"):
                found.append(f"operation {name}: message {message} is not one of its channel's")
    for name, channel in channels.items():
        placeholders = set(_EXPRESSION.findall(channel.get("address") or ""))
        parameters = set(channel.get("parameters", {}))
        if placeholders != parameters:
            found.append(f"channel {name}: address {placeholders} but parameters {parameters}")
    for section, entries in (document.get("components") or {}).items():
        for key in entries:
            if not _KEY.match(key):
                found.append(f"components.{section}: key {key!r} breaks the key pattern")
    return found


def assert_valid(document: Any) -> None:
    """Fail with every problem of ``document`` listed."""
    found = problems(document)
    assert not found, "\n".join(found)
