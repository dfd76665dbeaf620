"""Server-level behaviour around the app: root path, proxy headers, graceful shutdown."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from .conftest import RAW, STARLETTE, Pool
from .servers import Certificates, start, wait_exit
from .wire import Reader, request


def scope_via(
    pool: Pool, kind: str, extra: tuple[str, ...], path: str, **kwargs: Any
) -> dict[str, Any]:
    target = pool.get(RAW, kind, extra)
    with target.http() as client:
        response = client.get(path, **kwargs)
    assert response.status_code == 200
    shown: dict[str, Any] = response.json()
    return shown


def test_root_path_option(pool: Pool, kind: str) -> None:
    scope = scope_via(pool, kind, ("--root-path", "/prefix"), "/scope/x")
    assert scope["root_path"] == "/prefix"
    assert scope["path"] == "/prefix/scope/x"


def test_forwarded_headers_from_a_trusted_proxy(pool: Pool, kind: str) -> None:
    headers = {"x-forwarded-for": "10.1.2.3", "x-forwarded-proto": "https"}
    scope = scope_via(pool, kind, (), "/scope", headers=headers)
    client = scope["client"]["tuple"] if isinstance(scope["client"], dict) else scope["client"]
    assert client[0] == "10.1.2.3"
    assert scope["scheme"] == "https"


def test_graceful_shutdown_closes_websockets_with_1012(
    kind: str, log_dir: Path, certs: Certificates
) -> None:
    target = start(kind, RAW, log_dir, certs)
    try:
        with connect(target.ws_url("/ws/echo"), **target.ws_options()) as ws:
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
            stopper = threading.Thread(target=target.process.send_signal, args=(signal.SIGTERM,))
            stopper.start()
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)
            stopper.join(5)
            assert ws.protocol.close_rcvd is not None
            assert ws.protocol.close_rcvd.code == 1012
    finally:
        target.stop()


def test_graceful_shutdown_finishes_a_request_in_flight(
    kind: str, log_dir: Path, certs: Certificates
) -> None:
    target = start(kind, RAW, log_dir, certs)
    result: dict[str, Any] = {}

    def slow_call() -> None:
        with target.http() as client:
            result["response"] = client.get("/slow", params={"delay": 1.0})

    try:
        caller = threading.Thread(target=slow_call)
        caller.start()
        threading.Event().wait(0.3)
        target.process.send_signal(signal.SIGTERM)
        caller.join(10)
        assert result["response"].text == "slept 1.0"
    finally:
        target.stop()


def test_scope_json_helper_is_consistent(pool: Pool, kind: str) -> None:
    scope = scope_via(pool, kind, (), "/scope")
    assert json.loads(json.dumps(scope)) == scope


def test_shutdown_ends_an_open_sse_stream(kind: str, log_dir: Path, certs: Certificates) -> None:
    """SIGTERM with an endless sse-starlette stream open: the stream ends, the process exits."""
    target = start(kind, STARLETTE, log_dir, certs)
    try:
        with target.http() as client, client.stream("GET", "/sse-forever?key=shutdown") as response:
            lines = response.iter_lines()
            assert next(lines) == "data: 0"
            started = time.monotonic()
            target.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(httpx.HTTPError):
                for _ in lines:
                    assert time.monotonic() - started < 10
        assert wait_exit(target, 10) is not None
        assert time.monotonic() - started < 10
    finally:
        target.stop()


def test_shutdown_closes_idle_keep_alive_connections(
    kind: str, log_dir: Path, certs: Certificates
) -> None:
    target = start(kind, RAW, log_dir, certs)
    try:
        with target.raw() as sock:
            reader = Reader(sock)
            sock.sendall(request("GET", "/method"))
            assert reader.response().body == b"GET 0"
            started = time.monotonic()
            target.process.send_signal(signal.SIGTERM)
            assert reader.closed()
            assert wait_exit(target, 5) is not None
        assert time.monotonic() - started < 5
    finally:
        target.stop()


def test_limit_concurrency_answers_503(pool: Pool, kind: str) -> None:
    """Over the limit new calls get 503 (uvicorn counts its own connection: N - 1 run at once)."""
    target = pool.get(RAW, kind, ("--limit-concurrency", "2"))
    statuses: list[int] = []

    def slow_call() -> None:
        with target.http() as client:
            statuses.append(client.get("/slow", params={"delay": 1.0}).status_code)

    callers = [threading.Thread(target=slow_call) for _ in range(3)]
    for caller in callers:
        caller.start()
        threading.Event().wait(0.15)
    for caller in callers:
        caller.join(10)
    assert sorted(statuses)[0] == 200
    assert sorted(statuses)[-1] == 503
    with target.http() as client:
        assert client.get("/method").status_code == 200  # fine again once the load is gone


def test_timeout_keep_alive_closes_idle_connections(pool: Pool, kind: str) -> None:
    target = pool.get(RAW, kind, ("--timeout-keep-alive", "1"))
    with target.raw(timeout=5) as sock:
        reader = Reader(sock)
        sock.sendall(request("GET", "/method"))
        assert reader.response().body == b"GET 0"
        started = time.monotonic()
        assert reader.closed()
    assert 0.5 < time.monotonic() - started < 4


def test_factory_option(pool: Pool, kind: str) -> None:
    target = pool.get("tests.asgi_compliance.app_raw:create_app", kind, ("--factory",))
    with target.http() as client:
        assert client.get("/method").text == "GET 0"


def test_header_option_adds_a_default_header(pool: Pool, kind: str) -> None:
    target = pool.get(RAW, kind, ("--header", "X-Served-By:compliance"))
    with target.http() as client:
        assert client.get("/method").headers["x-served-by"] == "compliance"
