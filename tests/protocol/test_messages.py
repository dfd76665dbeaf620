"""WebSocketMessage and CloseCode: the values every layer passes around."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spikard import CloseCode, MessageType, WebSocketMessage
from spikard.messages import validate_close_code
from spikard.typed.encoding import coerce_message

# ---- constructors ------------------------------------------------------------------------------


def test_text_constructor() -> None:
    message = WebSocketMessage.text("héllo")
    assert message.type is MessageType.TEXT
    assert message.data == "héllo"
    assert message.code is None


@pytest.mark.parametrize("data", [b"\x00\xff", bytearray(b"\x00\xff"), memoryview(b"\x00\xff")])
def test_binary_constructor_copies_to_bytes(data: bytes | bytearray | memoryview) -> None:
    message = WebSocketMessage.binary(data)
    assert message.type is MessageType.BINARY
    assert type(message.data) is bytes
    assert message.data == b"\x00\xff"


def test_binary_constructor_does_not_alias_a_bytearray() -> None:
    buffer = bytearray(b"abc")
    message = WebSocketMessage.binary(buffer)
    buffer[0] = ord("z")
    assert message.as_binary() == b"abc"


@pytest.mark.parametrize("data", [b"x", 1, None])
def test_text_constructor_rejects_non_str(data: object) -> None:
    with pytest.raises(TypeError):
        WebSocketMessage.text(data)  # type: ignore[arg-type]


@pytest.mark.parametrize("data", ["x", 1, None])
def test_binary_constructor_rejects_non_bytes(data: object) -> None:
    with pytest.raises(TypeError):
        WebSocketMessage.binary(data)  # type: ignore[arg-type]


def test_close_constructor_defaults() -> None:
    message = WebSocketMessage.close()
    assert message.type is MessageType.CLOSE
    assert message.code == 1000
    assert message.reason == ""


@pytest.mark.parametrize(
    "code",
    [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 3999, 4000, 4999],
)
def test_close_accepts_codes_allowed_on_the_wire(code: int) -> None:
    message = WebSocketMessage.close(code, "bye")
    assert message.code == code
    assert message.reason == "bye"


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, -1])
def test_close_rejects_codes_that_cannot_be_sent(code: int) -> None:
    with pytest.raises(ValueError, match="cannot be sent"):
        WebSocketMessage.close(code)
    with pytest.raises(ValueError, match="cannot be sent"):
        validate_close_code(code)


def test_close_reason_limit_is_123_utf8_bytes() -> None:
    assert WebSocketMessage.close(1000, "x" * 123).reason == "x" * 123
    assert WebSocketMessage.close(1000, "é" * 61).reason == "é" * 61  # 122 bytes
    with pytest.raises(ValueError, match="123"):
        WebSocketMessage.close(1000, "x" * 124)
    with pytest.raises(ValueError, match="123"):
        WebSocketMessage.close(1000, "é" * 62)  # 62 characters, 124 bytes


# ---- accessors ---------------------------------------------------------------------------------


def test_predicates_and_accessors() -> None:
    text = WebSocketMessage.text("t")
    binary = WebSocketMessage.binary(b"b")
    close = WebSocketMessage.close(4000, "r")

    assert (text.is_text(), text.is_binary(), text.is_close()) == (True, False, False)
    assert (binary.is_text(), binary.is_binary(), binary.is_close()) == (False, True, False)
    assert (close.is_text(), close.is_binary(), close.is_close()) == (False, False, True)

    assert (text.as_text(), text.as_binary(), text.reason) == ("t", None, None)
    assert (binary.as_text(), binary.as_binary(), binary.reason) == (None, b"b", None)
    assert (close.as_text(), close.as_binary(), close.reason) == (None, None, "r")


def test_predicates_work_as_unbound_filters() -> None:
    messages = [WebSocketMessage.text("a"), WebSocketMessage.binary(b"b")]
    assert list(filter(WebSocketMessage.is_text, messages)) == messages[:1]
    assert list(filter(WebSocketMessage.is_binary, messages)) == messages[1:]


# ---- equality, hashing, immutability -----------------------------------------------------------


def test_equality() -> None:
    assert WebSocketMessage.text("a") == WebSocketMessage.text("a")
    assert WebSocketMessage.binary(b"a") == WebSocketMessage.binary(bytearray(b"a"))
    assert WebSocketMessage.close(1000, "x") == WebSocketMessage.close(1000, "x")
    assert WebSocketMessage.text("a") != WebSocketMessage.text("b")
    assert WebSocketMessage.text("a") != WebSocketMessage.binary(b"a")
    assert WebSocketMessage.close(1000) != WebSocketMessage.close(1001)
    assert WebSocketMessage.close(1000, "a") != WebSocketMessage.close(1000, "b")
    assert WebSocketMessage.text("") != WebSocketMessage.close(1000, "")
    not_a_message: object = "a"
    assert WebSocketMessage.text("a") != not_a_message


def test_hashable_and_consistent_with_equality() -> None:
    messages = {
        WebSocketMessage.text("a"),
        WebSocketMessage.text("a"),
        WebSocketMessage.binary(b"a"),
    }
    assert len(messages) == 2


@pytest.mark.parametrize("attribute", ["type", "data", "code", "extra"])
def test_immutable(attribute: str) -> None:
    message = WebSocketMessage.text("a")
    # A new attribute fails with TypeError on CPython 3.10/3.11 (frozen + slots dataclass
    # quirk, python/cpython#90562); any of these errors means the write was refused.
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError, TypeError)):
        setattr(message, attribute, "b")
    assert message == WebSocketMessage.text("a")


# ---- repr --------------------------------------------------------------------------------------


def test_repr() -> None:
    assert repr(WebSocketMessage.text("hi")) == "WebSocketMessage.text('hi')"
    assert repr(WebSocketMessage.binary(b"\x00")) == "WebSocketMessage.binary(b'\\x00')"
    assert repr(WebSocketMessage.close(4000, "bye")) == "WebSocketMessage.close(4000, 'bye')"


def test_repr_truncates_long_payloads() -> None:
    text = repr(WebSocketMessage.text("x" * 100))
    assert text == f"WebSocketMessage.text({'x' * 40!r} + 60 more)"
    binary = repr(WebSocketMessage.binary(b"y" * 41))
    assert binary == f"WebSocketMessage.binary({b'y' * 40!r} + 1 more)"


@given(
    st.one_of(
        st.text(max_size=40).map(WebSocketMessage.text),
        st.binary(max_size=40).map(WebSocketMessage.binary),
        st.builds(
            WebSocketMessage.close,
            st.sampled_from([1000, 1001, 1011, 3000, 4999]),
            st.text(max_size=30),
        ),
    )
)
def test_short_repr_evaluates_back_to_an_equal_message(message: WebSocketMessage) -> None:
    assert eval(repr(message), {"WebSocketMessage": WebSocketMessage}) == message


# ---- coercion and codes ------------------------------------------------------------------------


def test_coerce_message() -> None:
    message = WebSocketMessage.close(1001)
    assert coerce_message(message) is message
    assert coerce_message("t") == WebSocketMessage.text("t")
    assert coerce_message(b"b") == WebSocketMessage.binary(b"b")
    assert coerce_message(bytearray(b"b")) == WebSocketMessage.binary(b"b")
    assert coerce_message(memoryview(b"b")) == WebSocketMessage.binary(b"b")
    with pytest.raises(TypeError, match="'int'"):
        coerce_message(1)
    with pytest.raises(TypeError):
        coerce_message(None)


def test_close_codes_match_rfc_6455() -> None:
    codes = {code.name: int(code) for code in CloseCode}
    assert (
        codes.items()
        >= {
            "NORMAL_CLOSURE": 1000,
            "GOING_AWAY": 1001,
            "PROTOCOL_ERROR": 1002,
            "UNSUPPORTED_DATA": 1003,
            "NO_STATUS_RECEIVED": 1005,
            "ABNORMAL_CLOSURE": 1006,
            "INVALID_PAYLOAD": 1007,
            "POLICY_VIOLATION": 1008,
            "MESSAGE_TOO_BIG": 1009,
            "MANDATORY_EXTENSION": 1010,
            "INTERNAL_ERROR": 1011,
        }.items()
    )
