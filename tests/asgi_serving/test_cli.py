"""``python -m spikard module:app`` with a plain ASGI app: detection, options, workers, TLS."""

from __future__ import annotations

import argparse
import re
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
import trustme

from spikard import Spikard, WebSocket, WebSocketMessage
from spikard.asgi.serving import ASGIApplication, is_asgi_app
from spikard.server.cli import build_parser, resolve_app

from ..helpers import ws_connect
from ..server import ROOT, serve_subprocess, spikard_command
from .apps import fastapi_app, raw_app, starlette_app
from .serving import serve

APP = "tests.asgi_serving.apps:app"
_TLS_LISTENING = re.compile(rb"listening on https://127\.0\.0\.1:(\d+)")
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the client side


def parse(*options: str) -> argparse.Namespace:
    return build_parser().parse_args(["m:app", *options])


class NotAnApp:
    def __call__(self, request: object) -> None:  # pragma: no cover
        pass


def test_detection() -> None:
    assert is_asgi_app(starlette_app)
    assert is_asgi_app(fastapi_app)
    assert is_asgi_app(raw_app)
    assert not is_asgi_app(NotAnApp())
    assert not is_asgi_app(type(starlette_app))  # a class is not an ASGI 3 app
    assert not is_asgi_app(42)


def test_a_plain_asgi_app_is_wrapped_with_uvicorns_defaults() -> None:
    served = resolve_app(starlette_app, "m:app", parse())
    assert isinstance(served, ASGIApplication)
    assert served.app is starlette_app
    assert served.lifespan == "auto"
    config = served.websocket_config
    assert config.max_message_size == 16 * 1024 * 1024
    assert config.permessage_deflate is True
    assert (config.ping_interval, config.ping_timeout) == (20.0, 20.0)
    assert served.limit_concurrency is None


def test_the_asgi_options() -> None:
    options = parse(
        "--lifespan",
        "off",
        "--ws-max-size",
        "1000",
        "--ws-ping-interval",
        "0",
        "--ws-ping-timeout",
        "3.5",
        "--ws-per-message-deflate",
        "false",
        "--limit-concurrency",
        "7",
    )
    served = resolve_app(starlette_app, "m:app", options)
    assert isinstance(served, ASGIApplication)
    assert served.lifespan == "off"
    config = served.websocket_config
    assert config.max_message_size == 1000
    assert config.ping_interval is None
    assert config.ping_timeout == 3.5
    assert config.permessage_deflate is False
    assert served.limit_concurrency == 7


async def test_interface_asgi_serves_a_spikard_app_through_its_asgi_interface() -> None:
    spikard_app = Spikard()

    @spikard_app.get("/")
    def hello() -> str:
        return "hello through ASGI"

    @spikard_app.websocket("/echo")
    async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
        async for message in socket:
            yield message

    served = resolve_app(spikard_app, "m:app", parse("--interface", "asgi"))
    assert isinstance(served, ASGIApplication)
    async with serve(served) as running:
        async with httpx.AsyncClient() as http:
            response = await http.get(running.url + "/")
        async with ws_connect(running.ws_url("/echo")) as ws:
            await ws.send("round trip")
            assert await ws.recv() == "round trip"
    assert response.text == "hello through ASGI"


def test_interface_spikard_and_asgi() -> None:
    spikard_app = Spikard()
    assert resolve_app(spikard_app, "m:app", parse()) is spikard_app
    with pytest.raises(SystemExit, match="plain ASGI application, not a spikard one"):
        resolve_app(starlette_app, "m:app", parse("--interface", "spikard"))
    with pytest.raises(SystemExit, match="is not an ASGI application"):
        resolve_app(NotAnApp(), "m:app", parse("--interface", "asgi"))
    with pytest.raises(SystemExit, match="--ws-max-size configures the server for a plain"):
        resolve_app(spikard_app, "m:app", parse("--ws-max-size", "10"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--ws-max-size", "0"), "max_message_size must be positive"),
        (("--limit-concurrency", "0"), "limit_concurrency must be at least 1"),
    ],
)
def test_bad_values_are_one_line(options: tuple[str, ...], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        resolve_app(starlette_app, "m:app", parse(*options))


def test_a_bad_boolean_is_a_usage_error() -> None:
    result = subprocess.run(
        spikard_command(APP, "--ws-per-message-deflate", "maybe"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "not a boolean: 'maybe'" in result.stderr


def test_a_failed_startup_is_one_line_and_exit_1() -> None:
    result = subprocess.run(
        spikard_command("tests.asgi_serving.apps:failing_startup_app", "--port", "0"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    critical = [line for line in result.stderr.splitlines() if "CRITICAL" in line]
    assert len(critical) == 1
    assert critical[0].endswith(
        "application startup failed: LifespanFailure: lifespan startup failed: the database is down"
    )


@asyncio_only
async def test_the_cli_serves_starlette_and_shuts_down_cleanly() -> None:
    async with serve_subprocess(app=APP) as served:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.port}") as http:
            response = await http.get("/", params={"name": "cli"})
            scope = (await http.get("/scope/x")).json()
        async with ws_connect(served.ws_url("/ws")) as ws:
            await ws.send("cli")
            assert await ws.recv() == "CLI"
        served.process.send_signal(signal.SIGTERM)
        assert await served.wait(10) == 0
    assert response.text == "hello cli"
    assert scope["server"] == ["127.0.0.1", served.port]
    assert scope["state"] == ["greeting"]
    text = served.output.decode()
    assert "Traceback" not in text
    assert '"GET /?name=cli HTTP/1.1" 200' in text  # the access log


@asyncio_only
async def test_the_cli_over_tls(tmp_path: Path) -> None:
    authority = trustme.CA()
    pem = tmp_path / "server.pem"
    authority.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    async with await anyio.open_process(
        spikard_command(APP, "--port", "0", "--ssl-certfile", str(pem)),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    ) as process:
        assert process.stderr is not None
        output = bytearray()
        try:
            with anyio.fail_after(15):
                while (found := _TLS_LISTENING.search(output)) is None:
                    output += await process.stderr.receive()
            port = int(found.group(1))
            async with httpx.AsyncClient(verify=client_context) as http:
                response = await http.get(f"https://127.0.0.1:{port}/scope/x")
            async with ws_connect(f"wss://127.0.0.1:{port}/ws", ssl=client_context) as ws:
                await ws.send("tls")
                assert await ws.recv() == "TLS"
        finally:
            process.kill()
    assert response.json()["scheme"] == "https"


@asyncio_only
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads load")
async def test_two_workers_serve_a_starlette_app() -> None:
    async with serve_subprocess(["--workers", "2"], app=APP, drain=True) as served:
        pids: set[str] = set()
        with anyio.fail_after(20):
            for _ in range(64):  # SO_REUSEPORT hashes each new connection to a worker
                async with httpx.AsyncClient() as http:
                    response = await http.get(f"http://127.0.0.1:{served.port}/pid")
                pids.add(response.text)
                if len(pids) == 2:
                    break
    assert len(pids) == 2
