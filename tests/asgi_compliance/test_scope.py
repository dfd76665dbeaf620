"""The ``http`` and ``websocket`` scopes: every key, its type and its value (ASGI 3, spec 2.x)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.sync.client import connect

from .servers import Target
from .wire import Reader, request


def scope_of(target: Target, path: str = "/scope", **kwargs: Any) -> dict[str, Any]:
    with target.http() as client:
        response = client.request(kwargs.pop("method", "GET"), path, **kwargs)
    assert response.status_code == 200
    shown: dict[str, Any] = response.json()
    return shown


def raw_scope(target: Target, data: bytes) -> dict[str, Any]:
    with target.raw() as sock:
        sock.sendall(data)
        response = Reader(sock).response()
    assert response.status == 200, response
    shown: dict[str, Any] = json.loads(response.body)
    return shown


def b(text: str) -> dict[str, str]:
    return {"bytes": text}


def test_type_and_asgi_versions(raw: Target) -> None:
    scope = scope_of(raw)
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["asgi"]["spec_version"] in ("2.0", "2.1", "2.2", "2.3", "2.4", "2.5")


def test_http_version_is_1_1(raw: Target) -> None:
    assert scope_of(raw)["http_version"] == "1.1"


def test_http_version_1_0(raw: Target) -> None:
    scope = raw_scope(raw, request("GET", "/scope", version="HTTP/1.0"))
    assert scope["http_version"] == "1.0"


@pytest.mark.parametrize("verb", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_method_is_upper_case_str(raw: Target, verb: str) -> None:
    assert scope_of(raw, method=verb)["method"] == verb


def test_scheme(raw: Target) -> None:
    assert scope_of(raw)["scheme"] == ("https" if raw.tls else "http")


def test_path_is_percent_decoded_str(raw: Target) -> None:
    scope = raw_scope(raw, request("GET", "/scope/a%20b/%C3%A9/%2F"))
    assert scope["path"] == "/scope/a b/é//"


def test_raw_path_is_the_bytes_sent_without_query(raw: Target) -> None:
    scope = raw_scope(raw, request("GET", "/scope/a%20b/%C3%A9?x=1"))
    assert scope["raw_path"] == b("/scope/a%20b/%C3%A9")


def test_query_string_is_raw_bytes(raw: Target) -> None:
    scope = raw_scope(raw, request("GET", "/scope?a=1&b=%20x&c&a=2"))
    assert scope["query_string"] == b("a=1&b=%20x&c&a=2")


def test_query_string_empty_is_empty_bytes(raw: Target) -> None:
    assert scope_of(raw)["query_string"] == b("")


def test_query_string_with_empty_query(raw: Target) -> None:
    scope = raw_scope(raw, request("GET", "/scope?"))
    assert scope["query_string"] == b("")
    assert scope["path"] == "/scope"


def test_root_path_is_empty_by_default(raw: Target) -> None:
    assert scope_of(raw)["root_path"] == ""


def test_headers_are_lowercased_bytes_pairs_in_order(raw: Target) -> None:
    sent = [("X-First", "1"), ("x-second", "Two"), ("X-First", "again"), ("User-Agent", "ua/1")]
    scope = raw_scope(raw, request("GET", "/scope", headers=sent))
    headers = [
        (pair["tuple"][0], pair["tuple"][1]) if "tuple" in pair else tuple(pair)
        for pair in scope["headers"]
    ]
    names = [name["bytes"] for name, _ in headers]
    assert names[0] == "host"
    assert names[1:] == ["x-first", "x-second", "x-first", "user-agent"]
    values = [value["bytes"] for _, value in headers]
    assert values[1:] == ["1", "Two", "again", "ua/1"]


def test_header_values_keep_case_and_inner_spaces(raw: Target) -> None:
    scope = raw_scope(raw, request("GET", "/scope", headers=[("X-Odd", "  A  b  ")]))
    values = {_pair(p)[0]: _pair(p)[1] for p in scope["headers"]}
    assert values["x-odd"] == "A  b"


def _pair(shown: Any) -> tuple[str, str]:
    items = shown["tuple"] if isinstance(shown, dict) else shown
    return items[0]["bytes"], items[1]["bytes"]


def test_client_is_host_and_port(raw: Target) -> None:
    client = scope_of(raw)["client"]
    items = client["tuple"] if isinstance(client, dict) else client
    assert items[0] == "127.0.0.1"
    assert isinstance(items[1], int)
    assert items[1] > 0


def test_server_is_host_and_port(raw: Target) -> None:
    server = scope_of(raw)["server"]
    items = server["tuple"] if isinstance(server, dict) else server
    assert items == ["127.0.0.1", raw.port]


def test_state_from_lifespan_is_in_the_scope(raw: Target) -> None:
    assert scope_of(raw)["state"] == {"started": "started"}


def test_extensions_if_present_is_a_dict(raw: Target) -> None:
    scope = scope_of(raw)
    assert isinstance(scope.get("extensions", {}), dict)


def test_no_unknown_types_in_scope(raw: Target) -> None:
    """Every scope value is a plain type (str, bytes, int, list, tuple, dict, None)."""
    scope = scope_of(raw)

    def walk(value: Any) -> None:
        assert not (isinstance(value, dict) and "repr" in value), value
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk({k: v for k, v in scope.items() if k != "extensions"})


def ws_scope(target: Target, path: str, **kwargs: Any) -> dict[str, Any]:
    with connect(target.ws_url(path), **target.ws_options(), **kwargs) as ws:
        shown: dict[str, Any] = json.loads(ws.recv(timeout=5))
    return shown


def test_websocket_scope_type_and_versions(raw: Target) -> None:
    scope = ws_scope(raw, "/ws/scope")
    assert scope["type"] == "websocket"
    assert scope["asgi"]["version"] == "3.0"
    assert scope.get("http_version", "1.1") == "1.1"


def test_websocket_scope_scheme(raw: Target) -> None:
    assert ws_scope(raw, "/ws/scope")["scheme"] == ("wss" if raw.tls else "ws")


def test_websocket_scope_path_query_raw_path(raw: Target) -> None:
    scope = ws_scope(raw, "/ws/scope/a%20b?q=%C3%A9&z")
    assert scope["path"] == "/ws/scope/a b"
    assert scope["raw_path"] == b("/ws/scope/a%20b")
    assert scope["query_string"] == b("q=%C3%A9&z")
    assert scope["root_path"] == ""


def test_websocket_scope_subprotocols_in_order(raw: Target) -> None:
    scope = ws_scope(raw, "/ws/scope", subprotocols=["b.v1", "a.v2"])
    assert scope["subprotocols"] == ["b.v1", "a.v2"]


def test_websocket_scope_subprotocols_empty(raw: Target) -> None:
    assert ws_scope(raw, "/ws/scope")["subprotocols"] == []


def test_websocket_scope_headers(raw: Target) -> None:
    scope = ws_scope(raw, "/ws/scope", additional_headers={"X-Token": "Secret"})
    headers = dict(_pair(p) for p in scope["headers"])
    assert headers["x-token"] == "Secret"
    assert headers["upgrade"].lower() == "websocket"
    assert "sec-websocket-key" in headers


def test_websocket_scope_client_server_state(raw: Target) -> None:
    scope = ws_scope(raw, "/ws/scope")
    client = scope["client"]["tuple"] if isinstance(scope["client"], dict) else scope["client"]
    server = scope["server"]["tuple"] if isinstance(scope["server"], dict) else scope["server"]
    assert client[0] == "127.0.0.1"
    assert server == ["127.0.0.1", raw.port]
    assert scope["state"] == {"started": "started"}
