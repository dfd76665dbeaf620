"""TLS at the door: the startup line names https/wss; a client that fails the TLS handshake
(plain HTTP on the TLS port, garbage, silence) is dropped with one log line, no answer and no
traceback, and the server goes on serving."""

from __future__ import annotations

import logging
import re
import signal
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
import trustme

from spikard import HTTPConfig, Spikard, WebSocket, WebSocketMessage

from ..helpers import read_all, ws_connect
from . import APP, ROOT, spikard_command

_LISTENING = re.compile(
    rb"spikard listening on https://127\.0\.0\.1:(\d+) \(WebSocket: wss://127\.0\.0\.1:(\d+)\)"
)


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def contexts(certificate_authority: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    certificate_authority.configure_trust(client_context)
    return server_context, client_context


async def plain_http_exchange(port: int) -> bytes:
    """Send a plain HTTP request to ``port``; return everything that came back."""
    with anyio.fail_after(5):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(b"GET /health?token=secret HTTP/1.1\r\nHost: x\r\n\r\n")
            return await read_all(stream)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_cli_over_tls(
    anyio_backend: str, tmp_path: Path, certificate_authority: trustme.CA
) -> None:
    pem = tmp_path / "server.pem"
    certificate_authority.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(pem)
    )
    client_context = ssl.create_default_context()
    certificate_authority.configure_trust(client_context)
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
                while (found := _LISTENING.search(output)) is None:
                    output += await process.stderr.receive()
            port = int(found.group(1))
            assert int(found.group(2)) == port
            assert await plain_http_exchange(port) == b""  # no answer at all
            async with ws_connect(f"wss://127.0.0.1:{port}/echo", ssl=client_context) as ws:
                with anyio.fail_after(5):
                    await ws.send("after the plain client")
                    assert await ws.recv() == "after the plain client"
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(10):
                async for chunk in process.stderr:
                    output += chunk
                assert await process.wait() == 0, output.decode()
        finally:
            if process.returncode is None:
                process.kill()
    text = output.decode()
    assert "Traceback" not in text
    assert " ERROR " not in text
    refused = [line for line in text.splitlines() if "on the TLS port" in line]
    assert len(refused) == 1
    assert " INFO " in refused[0]
    assert re.search(
        r"plain HTTP request from 127\.0\.0\.1:\d+ on the TLS port: closed$", refused[0]
    )
    assert "secret" not in text


def echo_app(request_timeout: float = 10.0) -> Spikard:
    app = Spikard(http=HTTPConfig(request_timeout=request_timeout))

    @app.websocket("/echo")
    async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
        async for message in socket:
            yield message

    return app


async def test_garbage_instead_of_a_client_hello_is_one_info_line(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    server_context, client_context = contexts
    caplog.set_level(logging.DEBUG)
    async with echo_app().test_server(ssl_context=server_context) as server:
        with anyio.fail_after(5):
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 64)
                await read_all(stream)
        async with ws_connect(server.ws_url("/echo"), ssl=client_context) as ws:
            await ws.send("fine")
            assert await ws.recv() == "fine"
    failed = [r for r in caplog.records if "TLS handshake with" in r.getMessage()]
    assert len(failed) == 1
    assert failed[0].levelno == logging.INFO
    assert failed[0].name == "spikard.server"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_plain_http_on_the_tls_port_in_process(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    server_context, _ = contexts
    caplog.set_level(logging.DEBUG)
    async with echo_app().test_server(ssl_context=server_context) as server:
        assert await plain_http_exchange(server.port) == b""
    lines = [r for r in caplog.records if "on the TLS port" in r.getMessage()]
    assert [r.levelno for r in lines] == [logging.INFO]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


async def test_a_silent_client_is_cut_at_the_request_timeout(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    server_context, _ = contexts
    caplog.set_level(logging.INFO)
    async with echo_app(request_timeout=0.3).test_server(ssl_context=server_context) as server:
        with anyio.fail_after(5):
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                assert await read_all(stream) == b""  # the server hung up on its own
    timed_out = [r for r in caplog.records if "timed out after 0.3 s" in r.getMessage()]
    assert len(timed_out) == 1
    assert timed_out[0].levelno == logging.INFO


async def test_a_client_that_leaves_during_the_handshake_is_debug_only(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    server_context, client_context = contexts
    caplog.set_level(logging.DEBUG)
    async with echo_app().test_server(ssl_context=server_context) as server:
        with anyio.fail_after(5):
            stream = await anyio.connect_tcp("127.0.0.1", server.port)
            await stream.aclose()
        async with ws_connect(server.ws_url("/echo"), ssl=client_context) as ws:
            await ws.send("fine")  # by now the server has seen the first client leave
            assert await ws.recv() == "fine"
    left = [r for r in caplog.records if "left during the TLS handshake" in r.getMessage()]
    assert [r.levelno for r in left] == [logging.DEBUG]
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "TLS" in r.getMessage()]
