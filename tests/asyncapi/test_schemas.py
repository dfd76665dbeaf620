"""Schemas as AsyncAPI 3.0 wants them: draft 07, string discriminators, free component names."""

from __future__ import annotations

import enum
from typing import Any, Literal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikard.app.routing import PathPattern, Route
from spikard.asyncapi import build_document
from spikard.asyncapi.schemas import REF_PREFIX, SchemaRegistry, component_name

from .checks import assert_valid


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF_PREFIX + name}


def test_component_names_keep_to_the_key_pattern() -> None:
    assert component_name("Page[int]") == "Page_int_"
    assert component_name("mod.Outer.<locals>.Msg") == "mod.Outer._locals_.Msg"
    assert component_name("Café") == "Caf_"
    assert component_name("M-Input") == "M-Input"
    assert component_name("") == "Schema"


def test_merging_stores_one_schema_once_and_moves_a_different_one() -> None:
    registry = SchemaRegistry()
    point = {"type": "object", "properties": {"x": {"type": "integer"}}}
    other = {"type": "object", "properties": {"y": {"type": "integer"}}}
    assert registry._merge([ref("Point")], {"Point": point}) == [ref("Point")]
    assert registry._merge([ref("Point")], {"Point": point}) == [ref("Point")]
    assert registry._merge([ref("Point")], {"Point": other}) == [ref("Point_2")]
    assert registry.components == {"Point": point, "Point_2": other}


def test_a_component_that_refers_to_a_moved_one_moves_too() -> None:
    registry = SchemaRegistry()
    registry._merge([], {"Line": {"items": ref("Point")}, "Point": {"type": "integer"}})
    roots = registry._merge(
        [ref("Line"), ref("Other")],
        {
            "Line": {"items": ref("Point")},
            "Point": {"type": "string"},  # a different Point: Line now means something else
            "Other": {"type": "null"},
        },
    )
    assert roots == [ref("Line_2"), ref("Other")]
    assert registry.components["Line_2"] == {"items": ref("Point_2")}
    assert registry.components["Point_2"] == {"type": "string"}
    assert registry.components["Line"] == {"items": ref("Point")}


def test_normalization_reads_names_as_names_and_data_as_data() -> None:
    registry = SchemaRegistry()
    schema = {
        "type": "object",
        "properties": {  # property names that look like keywords
            "prefixItems": {"type": "string"},
            "default": ref("Page[int]"),
            "discriminator": {"anyOf": [ref("A"), ref("B")], "discriminator": {"x": 1}},
        },
        "default": {"discriminator": {"propertyName": "kept"}, "pair": (1, 2)},
        "examples": [{"$ref": "not a reference"}],
    }
    [root] = registry._merge([schema], {})
    assert root["properties"]["prefixItems"] == {"type": "string"}
    assert root["properties"]["default"] == ref("Page_int_")
    assert root["properties"]["discriminator"] == {"oneOf": [ref("A"), ref("B")]}
    assert root["default"] == {"discriminator": {"propertyName": "kept"}, "pair": [1, 2]}
    assert root["examples"] == [{"$ref": "not a reference"}]


def test_a_tuple_with_more_items_allowed() -> None:
    [root] = SchemaRegistry()._merge(
        [{"type": "array", "prefixItems": [{"type": "integer"}], "items": {"type": "string"}}],
        {},
    )
    assert root == {
        "type": "array",
        "items": [{"type": "integer"}],
        "additionalItems": {"type": "string"},
    }


# ---- any type msgspec can describe makes a valid document ----------------------------------

_NAMES = ("Item", "Other")  # few names, so that different Structs collide


def _struct(fields: list[tuple[str, Any]], name: str) -> Any:
    return msgspec.defstruct(name, [(f"f{i}", t) for i, (_, t) in enumerate(fields)])


base = st.sampled_from(
    [int, str, float, bool, bytes, type(None), Color, Literal["a", "b"], Any, dict[str, int]]
)
types = st.recursive(
    base,
    lambda inner: st.one_of(
        inner.map(lambda t: list[t]),  # type: ignore[valid-type]
        inner.map(lambda t: dict[str, t]),  # type: ignore[valid-type]
        inner.map(lambda t: t | None),
        st.tuples(inner, inner).map(lambda pair: tuple[pair[0], pair[1]]),  # type: ignore[valid-type]
        st.builds(
            _struct,
            st.lists(st.tuples(st.just(""), inner), min_size=1, max_size=3),
            st.sampled_from(_NAMES),
        ),
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(types, min_size=1, max_size=3))
def test_any_types_make_a_valid_document(declared: list[Any]) -> None:
    routes = [
        Route(
            PathPattern(f"/r{index}/{{id:int}}"),
            frozenset({"GET"}),
            None,
            kind="websocket",
            receive_type=receive,
            send_type=receive,
        )
        for index, receive in enumerate(declared)
    ]
    document = build_document(routes)
    assert_valid(document)
    assert len(document["channels"]) == len(declared)


class Opaque:
    """A plain class: no JSON Schema in msgspec or pydantic."""


@pytest.mark.parametrize("declared", [Opaque, list[Opaque], object()])
def test_what_neither_library_describes_is_a_type_error(declared: Any) -> None:
    with pytest.raises(TypeError, match="cannot describe"):
        SchemaRegistry().describe([(declared, "validation", "here")])
