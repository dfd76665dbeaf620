"""The scope built from a request, over every target and header the server can read."""

from __future__ import annotations

from urllib.parse import quote, unquote

from hypothesis import given
from hypothesis import strategies as st

from spikard.asgi.serving._scope import http_scope, websocket_scope
from spikard.datastructures import Address, Headers
from spikard.requests import Request

_PATH_TEXT = st.text(st.characters(codec="utf-8"), max_size=30)  # no lone surrogates
_QUERY = st.text(st.sampled_from("abc=&%20+xyz/?é"), max_size=20)
_TOKEN = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"), min_size=1
)
_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"))


@given(segments=st.lists(_PATH_TEXT, max_size=4), query=_QUERY)
def test_paths_and_queries(segments: list[str], query: str) -> None:
    raw_path = "/" + "/".join(quote(segment, safe="") for segment in segments)
    raw_query = quote(query, safe="=&+")
    target = raw_path + (f"?{raw_query}" if raw_query else "")
    request = Request("GET", target, Headers(), client=Address("127.0.0.1", 5))
    scope = http_scope(request, ("127.0.0.1", 8000), "", None)
    assert scope["raw_path"] == raw_path.encode()
    assert scope["path"] == unquote(raw_path)
    assert scope["query_string"] == raw_query.encode()
    assert scope["client"] == ("127.0.0.1", 5)
    assert "state" not in scope
    prefixed = http_scope(request, None, "/mount", {"k": 1})
    assert prefixed["path"] == "/mount" + unquote(raw_path)
    assert prefixed["raw_path"] == b"/mount" + raw_path.encode()
    assert prefixed["state"] == {"k": 1}


@given(fields=st.lists(st.tuples(_TOKEN, _VALUE), max_size=8))
def test_headers_keep_order_and_repeats_with_lower_case_names(
    fields: list[tuple[str, str]],
) -> None:
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in fields]
    request = Request("GET", "/", Headers.from_raw(raw))
    scope = websocket_scope(request, ("a", "b"), None, "", None)
    assert scope["headers"] == [(name.lower(), value) for name, value in raw]
    assert scope["subprotocols"] == ["a", "b"]
    assert scope["type"] == "websocket"
