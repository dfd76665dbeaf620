"""HTTP corners: request targets, odd bytes, framing the app gets wrong, upgrades that are not."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from .registry import wait_for
from .servers import Target
from .wire import Reader, request


def key() -> str:
    return uuid.uuid4().hex


def scope_for(target: Target, data: bytes) -> dict[str, Any]:
    with target.raw() as sock:
        sock.sendall(data)
        response = Reader(sock).response()
    assert response.status == 200, response
    shown: dict[str, Any] = json.loads(response.body)
    return shown


def test_absolute_form_target(raw: Target) -> None:
    scope = scope_for(raw, request("GET", f"http://127.0.0.1:{raw.port}/scope/abs?x=1"))
    assert scope["path"] == "/scope/abs"
    assert scope["query_string"] == {"bytes": "x=1"}


def test_double_slashes_are_kept(raw: Target) -> None:
    scope = scope_for(raw, request("GET", "/scope//double///slash"))
    assert scope["path"] == "/scope//double///slash"


def test_dot_segments_are_passed_as_sent(raw: Target) -> None:
    scope = scope_for(raw, request("GET", "/scope/a/../b"))
    assert scope["raw_path"] == {"bytes": "/scope/a/../b"}


def test_raw_utf8_in_query_is_kept_as_bytes(raw: Target) -> None:
    data = b"GET /scope?q=\xc3\xa9&r=%C3%A9 HTTP/1.1\r\nHost: a\r\n\r\n"
    with raw.raw() as sock:
        sock.sendall(data)
        response = Reader(sock).response()
    if response.status == 400:
        return  # refusing non-ASCII in the target is allowed (RFC 3986 forbids it)
    scope = json.loads(response.body)
    assert scope["query_string"] == {"bytes": "q=\xc3\xa9&r=%C3%A9"}


def test_obs_text_header_value_is_passed_as_bytes(raw: Target) -> None:
    data = b"GET /scope HTTP/1.1\r\nHost: a\r\nX-Latin: caf\xe9\r\n\r\n"
    scope = scope_for(raw, data)
    values = {pair["tuple"][0]["bytes"]: pair["tuple"][1]["bytes"] for pair in scope["headers"]}
    assert values["x-latin"] == "caf\xe9"


def test_100_request_headers(raw: Target) -> None:
    headers = [(f"X-H{i}", str(i)) for i in range(100)]
    scope = scope_for(raw, request("GET", "/scope", headers=headers))
    assert len(scope["headers"]) == 101


def test_body_on_get_reaches_the_app(raw: Target) -> None:
    scope = scope_for(raw, request("GET", "/scope", body=b"get-body"))
    assert scope["_body"] == "get-body"


def test_empty_more_body_chunks_do_not_end_the_body(raw: Target) -> None:
    with raw.raw() as sock:
        sock.sendall(request("GET", "/empty-chunks") + request("GET", "/method"))
        reader = Reader(sock)
        assert reader.response().body == b"onetwothree"
        assert reader.response().body == b"GET 0"


def test_http_1_0_empty_chunks(raw: Target) -> None:
    with raw.raw() as sock:
        sock.sendall(request("GET", "/empty-chunks", version="HTTP/1.0"))
        assert Reader(sock).response().body == b"onetwothree"


def test_body_shorter_than_declared_length_is_never_framed_as_declared(raw: Target) -> None:
    """The app declares 100 bytes and sends 5: never a 100-byte frame padded by later bytes."""
    with raw.raw() as sock:
        sock.sendall(request("GET", "/short-length") + request("GET", "/method"))
        reader = Reader(sock)
        try:
            response = reader.response()
        except (EOFError, OSError):
            return  # uvicorn: the head says 100, then the connection closes (keep-alive timeout)
    # spikard frames a whole body by its real length
    assert response.header(b"content-length") == b"5"
    assert response.body == b"short"


@pytest.mark.parametrize("code", [299, 420, 499, 599])
def test_unregistered_status_codes(raw: Target, code: int) -> None:
    with raw.raw() as sock:
        sock.sendall(request("GET", f"/custom-status?code={code}"))
        response = Reader(sock).response()
    assert (response.status, response.body) == (code, b"custom")


def test_large_response_header(raw: Target) -> None:
    with raw.raw() as sock:
        sock.sendall(request("GET", "/big-header"))
        response = Reader(sock).response()
    assert response.header(b"x-big") == b"v" * 16000


def test_client_abandons_the_body_app_sees_disconnect(raw: Target) -> None:
    name = key()
    with raw.raw() as sock:
        sock.sendall(
            request("POST", f"/body-seen?key={name}", headers=[("Content-Length", "100000")])
        )
        sock.sendall(b"p" * 1000)
        with raw.http() as client:
            wait_for(client, name)
    with raw.http() as client:
        events = wait_for(client, name, count=2, timeout=4)
    assert events[-1] == "http.disconnect 0"
    assert all(event.startswith("http.request") for event in events[:-1])


def test_expect_100_continue_not_sent_when_the_app_does_not_read(raw: Target) -> None:
    with raw.raw() as sock:
        sock.sendall(
            request(
                "POST", "/no-read", headers=[("Expect", "100-continue"), ("Content-Length", "5")]
            )
        )
        response = Reader(sock).response()
    assert (response.status, response.body) == (200, b"unread")


def test_upgrade_to_something_else_is_plain_http(raw: Target) -> None:
    headers = [
        ("Connection", "Upgrade, HTTP2-Settings"),
        ("Upgrade", "h2c"),
        ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
    ]
    with raw.raw() as sock:
        sock.sendall(request("GET", "/method", headers=headers))
        response = Reader(sock).response()
    assert (response.status, response.body) == (200, b"GET 0")


def test_transfer_encoding_and_content_length_together(raw: Target) -> None:
    data = (
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    )
    with raw.raw() as sock:
        sock.sendall(data)
        reader = Reader(sock)
        try:
            response = reader.response()
        except (EOFError, ConnectionError):
            return
    assert response.status == 400 or response.body == b"hello"  # RFC 9112 6.3: never "hel"


def test_unknown_transfer_encoding_is_rejected(raw: Target) -> None:
    data = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nxx"
    with raw.raw() as sock:
        sock.sendall(data)
        reader = Reader(sock)
        try:
            response = reader.response()
        except (EOFError, ConnectionError):
            return
    assert response.status in (400, 501)


def test_lowercase_method_is_passed_or_rejected(raw: Target) -> None:
    with raw.raw() as sock:
        sock.sendall(request("get", "/method"))
        response = Reader(sock).response()
    assert response.status in (200, 400, 405)
    if response.status == 200:
        # RFC 9110 9.1: case-sensitive (uvicorn passes "get"); ASGI: "uppercased" (spikard)
        assert response.body in (b"get 0", b"GET 0")


def test_request_line_with_extra_spaces_is_rejected(raw: Target) -> None:
    with raw.raw() as sock:
        sock.sendall(b"GET  /method HTTP/1.1\r\nHost: a\r\n\r\n")
        reader = Reader(sock)
        try:
            response = reader.response()
        except (EOFError, ConnectionError):
            return
    assert response.status == 400


def test_header_with_space_before_colon_is_rejected(raw: Target) -> None:
    with raw.raw() as sock:
        sock.sendall(b"GET /method HTTP/1.1\r\nHost: a\r\nX-Bad : 1\r\n\r\n")
        reader = Reader(sock)
        try:
            response = reader.response()
        except (EOFError, ConnectionError):
            return
    assert response.status == 400  # RFC 9112 5.1


def test_bare_lf_line_endings(raw: Target) -> None:
    with raw.raw() as sock:
        sock.sendall(b"GET /method HTTP/1.1\nHost: a\n\n")
        reader = Reader(sock)
        try:
            response = reader.response()
        except (EOFError, ConnectionError):
            return
    assert response.status in (200, 400)


def test_websocket_scope_offers_the_denial_extension(raw: Target) -> None:
    from websockets.sync.client import connect

    with connect(raw.ws_url("/ws/scope"), **raw.ws_options()) as ws:
        scope = json.loads(ws.recv(timeout=5))
    assert "websocket.http.response" in scope.get("extensions", {})


@pytest.mark.parametrize(
    ("what", "size"),
    [("path", 8000), ("query", 8000), ("header", 8000), ("header", 12000), ("cookie", 4000)],
)
def test_large_request_heads_under_16_kib(raw: Target, what: str, size: int) -> None:
    """Heads well under uvicorn's (h11's) 16 KiB bound are served."""
    filler = "a" * size
    if what == "path":
        data = request("GET", f"/scope/{filler}")
    elif what == "query":
        data = request("GET", f"/scope?q={filler}")
    elif what == "header":
        data = request("GET", "/scope", headers=[("X-Large", filler)])
    else:
        data = request(
            "GET",
            "/scope",
            headers=[("Cookie", "; ".join(f"c{i}={filler[:40]}" for i in range(size // 45)))],
        )
    with raw.raw() as sock:
        sock.sendall(data)
        response = Reader(sock).response()
    assert response.status == 200


def test_many_small_cookies_header_lines(raw: Target) -> None:
    headers = [("Cookie", f"c{i}=v{i}") for i in range(50)]
    scope = scope_for(raw, request("GET", "/scope", headers=headers))
    assert len(scope["headers"]) == 51


def test_streamed_body_longer_than_declared_is_cut_at_the_length(raw: Target) -> None:
    name = key()
    with raw.raw() as sock:
        sock.sendall(
            request("GET", f"/long-stream-for-length?key={name}") + request("GET", "/method")
        )
        reader = Reader(sock)
        first = reader.response()
        assert first.body == b"12345"
        try:
            second = reader.response()
        except (EOFError, OSError):
            return  # closing after the declared length is the safe answer
        assert (second.status, second.body) == (200, b"GET 0")  # never the app's extra bytes


def test_bad_header_name_from_the_app_is_not_sent(raw: Target) -> None:
    with raw.raw() as sock:
        sock.sendall(request("GET", "/bad-header-name"))
        reader = Reader(sock)
        try:
            response = reader.response()
        except (EOFError, ConnectionError):
            return
    assert response.status == 500
    assert b"bad" not in b"".join(name for name, _ in response.headers)


@pytest.mark.parametrize("code", [99, 101, 600, 1000])
def test_invalid_status_from_the_app_is_500_or_cut(raw: Target, code: int) -> None:
    with raw.raw() as sock:
        sock.sendall(request("GET", f"/bad-status?code={code}"))
        reader = Reader(sock)
        try:
            response = reader.response()
        except (EOFError, ConnectionError):
            return
    assert response.status == 500
