"""Property tests: what the client sends arrives in the scope and messages byte for byte."""

from __future__ import annotations

import json
from urllib.parse import quote, unquote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from .servers import Target
from .wire import Reader, request

_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_segment = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
_query_byte = st.sampled_from(list(b"abcXYZ019-._~!$'()*,;:@/?=&+%"))
_visible = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)


def scope_for(target: Target, data: bytes) -> dict[str, object]:
    with target.raw() as sock:
        sock.sendall(data)
        response = Reader(sock).response()
    assert response.status == 200, response
    shown: dict[str, object] = json.loads(response.body)
    return shown


@_SETTINGS
@given(segments=st.lists(_segment, min_size=1, max_size=4))
def test_path_round_trip(raw: Target, segments: list[str]) -> None:
    raw_path = "/scope/" + "/".join(quote(segment, safe="") for segment in segments)
    scope = scope_for(raw, request("GET", raw_path))
    assert scope["raw_path"] == {"bytes": raw_path}
    assert scope["path"] == unquote(raw_path)


@_SETTINGS
@given(query=st.lists(_query_byte, max_size=60).map(bytes))
def test_query_string_round_trip(raw: Target, query: bytes) -> None:
    scope = scope_for(raw, request("GET", "/scope?" + query.decode()))
    assert scope["query_string"] == {"bytes": query.decode()}


@_SETTINGS
@given(value=_visible)
def test_header_value_round_trip(raw: Target, value: str) -> None:
    scope = scope_for(raw, request("GET", "/scope", headers=[("X-Prop", value)]))
    headers = scope["headers"]
    assert isinstance(headers, list)
    found = [pair["tuple"][1]["bytes"] for pair in headers if pair["tuple"][0]["bytes"] == "x-prop"]
    assert found == [value]


@_SETTINGS
@given(
    messages=st.lists(
        st.one_of(st.text(max_size=300), st.binary(max_size=300)), min_size=1, max_size=8
    )
)
def test_websocket_messages_round_trip(raw: Target, messages: list[str | bytes]) -> None:
    with connect(raw.ws_url("/ws/echo"), **raw.ws_options()) as ws:
        for message in messages:
            if isinstance(message, str) and message.startswith("close "):
                continue  # the echo route's own command
            ws.send(message)
            assert ws.recv(timeout=5) == message
