"""The checker the other tests rely on: it accepts a correct document and names each mistake."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from .checks import SCHEMA_PATH, official_validator, problems, resolve

VALID: dict[str, Any] = {
    "asyncapi": "3.0.0",
    "info": {"title": "t", "version": "1"},
    "channels": {
        "rooms_room": {
            "address": "/rooms/{room}",
            "parameters": {"room": {"description": "the room"}},
            "messages": {"Say": {"$ref": "#/components/messages/Say"}},
        }
    },
    "operations": {
        "receive_rooms_room": {
            "action": "receive",
            "channel": {"$ref": "#/channels/rooms_room"},
            "messages": [{"$ref": "#/channels/rooms_room/messages/Say"}],
        }
    },
    "components": {
        "schemas": {"Say": {"type": "object", "properties": {"text": {"type": "string"}}}},
        "messages": {"Say": {"payload": {"$ref": "#/components/schemas/Say"}}},
    },
}


def mutated(path: list[str | int], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(VALID)
    node: Any = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return document


def test_the_official_schema_is_the_bundled_3_0_0_one() -> None:
    schema = official_validator().schema
    assert isinstance(schema, dict)
    assert schema["$id"] == "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
    assert schema["properties"]["asyncapi"]["const"] == "3.0.0"


def test_a_correct_document_has_no_problems() -> None:
    assert problems(VALID) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (["asyncapi"], "2.6.0", "schema: /asyncapi"),
        (["info"], {"title": "t"}, "schema: /info"),
        (["operations", "receive_rooms_room", "action"], "publish", "schema: /operations"),
        (  # OpenAPI's discriminator object: AsyncAPI 3.0 wants the property name
            ["components", "schemas", "Say", "discriminator"],
            {"propertyName": "type"},
            "schema: /components/schemas/Say",
        ),
        (["components", "messages", "Say", "payload", "$ref"], "#/components/schemas/No", "ref:"),
        (
            ["operations", "receive_rooms_room", "messages", 0, "$ref"],
            "#/components/messages/Say",
            "not one of its channel's",
        ),
        (["channels", "rooms_room", "address"], "/rooms/{room}/{n}", "channel rooms_room"),
        (["components", "schemas", "Page[int]"], {"type": "object"}, "key pattern"),
        (["info", "version"], ("1",), "json:"),
    ],
)
def test_each_mistake_is_named(path: list[str | int], value: Any, expected: str) -> None:
    found = problems(mutated(path, value))
    assert any(expected in line for line in found), found


def test_resolve_reads_escaped_pointers() -> None:
    document = {"a": {"x/y": [{"~": 1}]}}
    assert resolve(document, "#/a/x~1y/0/~0") == 1
    with pytest.raises(LookupError):
        resolve(document, "#/a/x~1y/1")
    with pytest.raises(LookupError):
        resolve(document, "other.json#/a")


def test_the_vendored_schema_is_the_file_its_readme_names() -> None:
    readme = (SCHEMA_PATH.parent / "README.md").read_text(encoding="utf-8")
    digest = hashlib.sha256(SCHEMA_PATH.read_bytes()).hexdigest()
    assert f"`{digest}`" in readme
    assert "@asyncapi/specs@6.11.1" in readme
    assert (
        (SCHEMA_PATH.parent / "LICENSE")
        .read_text(encoding="utf-8")
        .lstrip()
        .startswith("Apache License")
    )
