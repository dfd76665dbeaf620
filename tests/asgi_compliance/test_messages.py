"""The shape of ASGI messages both ways: optional keys, defaults, None values, header forms."""

from __future__ import annotations

import json
import uuid

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from .registry import wait_for
from .servers import Target
from .wire import Reader, chunked, request


def test_minimal_response_messages(raw: Target) -> None:
    with raw.raw() as sock:
        sock.sendall(request("GET", "/minimal-messages") + request("GET", "/method"))
        reader = Reader(sock)
        first = reader.response()
        assert (first.status, first.body) == (200, b"")
        assert reader.response().body == b"GET 0"


def test_header_pairs_as_lists(raw: Target) -> None:
    with raw.http() as client:
        response = client.get("/list-headers")
    assert (response.headers["x-list"], response.headers["x-tuple"]) == ("1", "2")


def test_http_request_messages_carry_body_and_more_body(raw: Target) -> None:
    data = request(
        "POST",
        "/request-keys",
        headers=[("Transfer-Encoding", "chunked")],
        body=chunked(b"a", b"b"),
        length=False,
    )
    with raw.raw() as sock:
        sock.sendall(data)
        keys = json.loads(Reader(sock).response().body)
    assert all({"type", "body"} <= set(message) for message in keys), keys


def test_get_request_message_has_a_body_key(raw: Target) -> None:
    with raw.http() as client:
        keys = client.get("/request-keys").json()
    assert keys == [["body", "more_body", "type"]] or keys == [["body", "type"]]


def test_app_connection_close_header_closes(raw: Target) -> None:
    with raw.raw() as sock:
        sock.sendall(request("GET", "/close-after") + request("GET", "/method"))
        reader = Reader(sock)
        assert reader.response().body == b"bye"
        assert reader.closed()  # the second request is never answered on this connection


def test_app_declared_chunking_is_not_doubled(raw: Target) -> None:
    with raw.raw() as sock:
        sock.sendall(request("GET", "/own-chunking"))
        response = Reader(sock).response()
    assert response.chunked
    assert response.body == b"alphabeta"
    assert len(response.all(b"transfer-encoding")) == 1


def test_date_header_is_sent(raw: Target) -> None:
    with raw.raw() as sock:
        sock.sendall(request("GET", "/method"))
        response = Reader(sock).response()
    assert response.header(b"date") is not None  # RFC 9110 6.6.1


def test_websocket_optional_keys_as_none(raw: Target) -> None:
    with connect(raw.ws_url("/ws/none-keys"), **raw.ws_options()) as ws:
        ws.send("txt")
        assert ws.recv(timeout=5) == "txt"
        assert ws.recv(timeout=5) == b"raw"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.protocol.close_rcvd is not None
        assert ws.protocol.close_rcvd.code == 1000


@pytest.mark.parametrize(("payload", "present"), [("text", "text"), (b"bytes", "bytes")])
def test_websocket_receive_message_shape(raw: Target, payload: str | bytes, present: str) -> None:
    name = uuid.uuid4().hex
    with connect(raw.ws_url(f"/ws/message-keys?key={name}"), **raw.ws_options()) as ws:
        ws.send(payload)
        shown = json.loads(ws.recv(timeout=5))
    assert shown["type"] == "str"
    assert shown[present] == ("str" if present == "text" else "bytes")
    other = "bytes" if present == "text" else "text"
    assert shown.get(other, "NoneType") == "NoneType"


def test_websocket_disconnect_message_has_code_and_reason(raw: Target) -> None:
    name = uuid.uuid4().hex
    with connect(raw.ws_url(f"/ws/message-keys?key={name}"), **raw.ws_options()) as ws:
        ws.send("x")
        ws.recv(timeout=5)
        ws.close(4444, "because")
    with raw.http() as client:
        shown = json.loads(wait_for(client, name)[0])
    assert shown["code"] == 4444
    assert shown.get("reason", "because") == "because"
