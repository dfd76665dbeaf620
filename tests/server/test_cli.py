"""``python -m spikard module:app``: serving, SIGTERM, bad targets, the trio backend."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import anyio
import pytest
from websockets.exceptions import ConnectionClosed

from spikard.server.cli import build_parser, load_app

from ..helpers import ws_connect
from . import ROOT, serve_subprocess, spikard_command


async def http_get(port: int, path: str) -> bytes:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        with anyio.fail_after(5):
            while True:
                try:
                    data += await stream.receive()
                except anyio.EndOfStream:
                    return data


async def test_serve_echo_and_sigterm_closes_sockets_with_1001() -> None:
    async with serve_subprocess() as served:
        reply = await http_get(served.port, "/health")
        assert reply.startswith(b"HTTP/1.1 200")
        assert reply.endswith(b'{"status":"ok","path":"/health"}')
        async with ws_connect(served.ws_url("/echo")) as ws:
            with anyio.fail_after(5):
                await ws.send("over the wire")
                assert await ws.recv() == "over the wire"
            served.process.send_signal(signal.SIGTERM)
            with anyio.fail_after(5), pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1001
        assert await served.wait(timeout=5) == 0
    text = served.output.decode()
    assert "SIGTERM received" in text
    assert '"WEBSOCKET /echo HTTP/1.1" 101' in text


async def test_sigint_without_connections_exits_zero() -> None:
    async with serve_subprocess() as served:
        served.process.send_signal(signal.SIGINT)
        assert await served.wait(timeout=5) == 0
    assert "SIGINT received" in served.output.decode()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_trio_backend(anyio_backend: str) -> None:
    async with serve_subprocess(["--backend", "trio", "--log-level", "info"]) as served:
        assert "starting on trio" in served.output.decode()
        async with ws_connect(served.ws_url("/echo")) as ws:
            with anyio.fail_after(5):
                await ws.send(b"trio bytes")
                assert await ws.recv() == b"trio bytes"
            served.process.send_signal(signal.SIGTERM)
            with anyio.fail_after(5), pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1001
        assert await served.wait(timeout=5) == 0


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        spikard_command(*args), cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nope:app", "could not import module 'nope'"),
        ("tests.server.app_for_cli:missing", "has no attribute 'missing'"),
        ("tests.server.app_for_cli", "expected 'module:attribute'"),
        ("tests.server.app_for_cli:NOT_AN_APP", "is not a spikard application"),
    ],
)
def test_bad_target_exits_nonzero_with_a_clear_message(target: str, message: str) -> None:
    result = run_cli(target, "--port", "0")
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_backend_is_a_usage_error() -> None:
    result = run_cli("tests.server.app_for_cli:app", "--backend", "curio")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_parser_defaults() -> None:
    args = build_parser().parse_args(["m:app"])
    assert (args.app, args.host, args.port, args.backend, args.log_level) == (
        "m:app",
        "127.0.0.1",
        8000,
        "asyncio",
        "info",
    )


def test_load_app_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    from .app_for_cli import app

    assert load_app("tests.server.app_for_cli:app") is app
    with pytest.raises(SystemExit, match="could not import module"):
        load_app("surely_not_a_module_name:app")
    with pytest.raises(SystemExit, match="has no attribute"):
        load_app("tests.server.app_for_cli:app.nothing")


def test_import_error_inside_the_app_module_is_not_hidden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "zzq_broken_service.py").write_text("import zzq_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        load_app("zzq_broken_service:app")
    assert info.value.name == "zzq_missing_dependency"


def test_missing_dependency_whose_name_prefixes_the_module_is_not_hidden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # zzq_service imports a missing module "zzq": "zzq_service".startswith("zzq") is True, so
    # the real ModuleNotFoundError is reported as "could not import module 'zzq_service'".
    (tmp_path / "zzq_service.py").write_text("import zzq\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        load_app("zzq_service:app")
    assert info.value.name == "zzq"
