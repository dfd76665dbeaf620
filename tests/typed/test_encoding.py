"""Outgoing values without a declared type: each encoded by its own library, nested ones too."""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest

from spikard import WebSocketMessage
from spikard.typed import codec_for
from spikard.typed.encoding import coerce_message

from .models import DSay, Join, Point, POut, Said


@dataclasses.dataclass
class Wrapper:
    model: POut
    count: int


def text_of(value: object) -> str:
    message = coerce_message(value)
    assert message.is_text()
    text = message.as_text()
    assert text is not None
    return text


def test_typed_values_become_json_text() -> None:
    assert text_of(Said(room="r", text="t")) == '{"type":"said","room":"r","text":"t"}'
    assert text_of(Point(x=1, y=2)) == '{"x":1,"y":2}'
    assert text_of(POut(text="é")) == '{"type":"said","text":"é"}'
    assert text_of({"join": Join(room="r"), "at": [Point(x=0, y=1)]}) == (
        '{"join":{"type":"join","room":"r"},"at":[{"x":0,"y":1}]}'
    )
    assert text_of((1, "a")) == '[1,"a"]'


def test_a_dataclass_holding_a_model_is_written_field_by_field() -> None:
    assert json.loads(text_of(Wrapper(POut(text="x"), 2))) == {
        "model": {"type": "said", "text": "x"},
        "count": 2,
    }


def test_without_msgspec_dataclasses_are_written_by_the_stdlib(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @dataclasses.dataclass
    class Fresh:  # a class whose encoder was not chosen yet
        a: float

    monkeypatch.setitem(sys.modules, "msgspec", None)
    assert text_of(Fresh(a=0.5)) == '{"a":0.5}'


def test_values_encoded_by_their_type_match_the_declared_codec() -> None:
    """A typed route and an untyped one write the same bytes for the same value."""
    for declared, value in [
        (Said, Said(room="r", text="t")),
        (Point, Point(x=3, y=4)),
        (DSay, DSay(type="say", text="t")),
        (POut, POut(text="t")),
    ]:
        assert codec_for(declared).encode(value) == text_of(value)


def test_other_values_are_refused() -> None:
    for value in (None, 3, 2.5, {1, 2}, object()):
        with pytest.raises(
            TypeError, match="send WebSocketMessage, str or bytes, or for JSON a dict"
        ):
            coerce_message(value)
    with pytest.raises(ValueError, match="Out of range float values"):
        coerce_message({"x": float("inf")})
    assert coerce_message(WebSocketMessage.text("t")) == WebSocketMessage.text("t")
