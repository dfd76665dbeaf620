"""Startup failures of ``python -m spikard``: one line on stderr, exit status 1, no traceback.

Real processes, real sockets: a port held by a listening socket of the test, an address no
interface has (TEST-NET-1), ports out of range; on one process and under ``--workers``,
where a worker that cannot start stops the supervisor instead of being restarted forever.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spikard import Spikard
from spikard.server.bind import BindError, bind_error, check_port, probe_bind
from spikard.server.serve import Server

from . import APP, ROOT, serve_subprocess, spikard_command

UNASSIGNED = "192.0.2.1"  # TEST-NET-1 (RFC 5737): no interface of this machine has it


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port of 127.0.0.1 that a listening socket of this test holds."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def run_cli(*args: str, cwd: Path = ROOT) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        spikard_command(*args), cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )
    return result, time.monotonic() - started


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


WORKER_MODES = [pytest.param((), id="one-process"), pytest.param(("--workers", "2"), id="workers")]


@pytest.mark.parametrize("mode", WORKER_MODES)
def test_a_busy_port_is_one_line_and_status_1(held_port: int, mode: tuple[str, ...]) -> None:
    result, took = run_cli(APP, "--port", str(held_port), *mode)
    assert_one_line_failure(
        result, f"cannot listen on 127.0.0.1:{held_port}", "the address is already in use"
    )
    assert took < 15  # no restarts under --workers


@pytest.mark.parametrize("mode", WORKER_MODES)
def test_an_address_no_interface_has_is_one_line_and_status_1(mode: tuple[str, ...]) -> None:
    result, _ = run_cli(APP, "--host", UNASSIGNED, "--port", "0", *mode)
    assert_one_line_failure(
        result, f"cannot listen on {UNASSIGNED}:", "no network interface has this address"
    )


@pytest.mark.parametrize("mode", WORKER_MODES)
@pytest.mark.parametrize("port", ["65536", "70000", "-1"])
def test_a_port_out_of_range_is_one_line_and_status_1(port: str, mode: tuple[str, ...]) -> None:
    result, _ = run_cli(APP, "--port", port, *mode)
    assert_one_line_failure(result, f"127.0.0.1:{port}", "the port must be between 0 and 65535")


def test_a_port_that_is_no_number_is_a_usage_error() -> None:
    result, _ = run_cli(APP, "--port", "http")
    assert result.returncode == 2
    assert "not a port number: 'http'" in result.stderr


@pytest.mark.parametrize("mode", WORKER_MODES)
def test_a_host_name_that_does_not_resolve_is_one_line_and_status_1(
    mode: tuple[str, ...],
) -> None:
    result, _ = run_cli(APP, "--host", "no-such-host.invalid", *mode)
    assert_one_line_failure(result, "cannot resolve the host name 'no-such-host.invalid'")


GRABBING_APP = """\
import os, socket
from spikard import Spikard

app = Spikard()
held = []

@app.on_startup
def grab_the_port() -> None:
    # Takes the server's own port without SO_REUSEPORT, so the worker's bind fails.
    holder = socket.socket()
    holder.bind(("127.0.0.1", int(os.environ["GRAB_PORT"])))
    holder.listen()
    held.append(holder)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_worker_that_cannot_bind_stops_the_supervisor_at_once(tmp_path: Path) -> None:
    (tmp_path / "grabbing_app.py").write_text(GRABBING_APP)
    port = free_port()
    started = time.monotonic()
    result = subprocess.run(
        spikard_command("grabbing_app:app", "--port", str(port), "--workers", "2"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "GRAB_PORT": str(port)},
    )
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - started < 15
    assert "could not start (see its line above): stopping" in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "restarting" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_worker_whose_startup_hook_fails_stops_the_supervisor(tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text(
        "from spikard import Spikard\n"
        "app = Spikard()\n"
        "@app.on_startup\n"
        "async def connect() -> None:\n"
        "    raise ConnectionError('redis://127.0.0.1:1 is unreachable')\n"
    )
    result, took = run_cli("broken_app:app", "--port", "0", "--workers", "2", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert took < 15
    assert "application startup failed: ConnectionError" in result.stderr
    assert "could not start" in result.stderr
    assert "restarting" not in result.stderr
    assert "Traceback" not in result.stderr


# ---- in process -------------------------------------------------------------------------


async def test_server_serve_raises_bind_error_for_a_busy_port(held_port: int) -> None:
    server = Server(Spikard())
    with pytest.raises(BindError) as info, anyio.fail_after(5):
        await server.serve("127.0.0.1", held_port)
    assert isinstance(info.value, OSError)
    assert info.value.errno == errno.EADDRINUSE
    assert (info.value.host, info.value.port) == ("127.0.0.1", held_port)
    assert str(info.value) == (
        f"cannot listen on 127.0.0.1:{held_port}: "
        "the address is already in use (is another server running on it?)"
    )


def test_probe_bind_sees_what_the_server_would_see(held_port: int) -> None:
    with pytest.raises(BindError, match="already in use"):
        probe_bind("127.0.0.1", held_port, reuse_port=True)
    with pytest.raises(BindError, match="no network interface"):
        probe_bind(UNASSIGNED, 0)
    with pytest.raises(BindError, match="between 0 and 65535"):
        probe_bind("127.0.0.1", 65536)
    probe_bind("127.0.0.1", 0)  # a free port passes


def test_bind_error_messages() -> None:
    assert str(bind_error("::1", 80, OSError(errno.EACCES, "Permission denied"))) == (
        "cannot listen on [::1]:80: permission denied (ports below 1024 need privileges)"
    )
    assert str(bind_error("h", 8000, OSError(errno.EACCES, "x"))).endswith(": permission denied")
    assert str(bind_error("h", 1, OverflowError("bind(): port must be 0-65535."))).endswith(
        "the port must be between 0 and 65535"
    )
    assert str(bind_error("h", 1, OSError(errno.ENETDOWN, "x"))) == (
        "cannot listen on h:1: network is down"
    )
    with pytest.raises(BindError):
        check_port("h", 65536)
    check_port("h", 0)
    check_port("h", 65535)


@pytest.fixture
def shared_port() -> Iterator[int]:
    """A port of 127.0.0.1 held by a listening socket that allows sharing (SO_REUSEPORT)."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_workers_do_not_join_a_sharing_listener_unasked(shared_port: int) -> None:
    # Another server's SO_REUSEPORT workers would let ours bind: the supervisor refuses.
    result, _ = run_cli(APP, "--port", str(shared_port), "--workers", "2")
    assert_one_line_failure(result, f"127.0.0.1:{shared_port}", "already in use")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_workers_join_a_sharing_listener_with_reuse_port(
    anyio_backend: str, shared_port: int
) -> None:
    extra = ["--port", str(shared_port), "--workers", "2", "--reuse-port"]
    async with serve_subprocess(extra) as served:
        assert served.port == shared_port
        served.process.send_signal(signal.SIGTERM)
        assert await served.wait(timeout=15) == 0


@given(port=st.integers(min_value=-(2**70), max_value=2**70))
def test_check_port_accepts_exactly_the_tcp_ports(port: int) -> None:
    if 0 <= port <= 65535:
        check_port("127.0.0.1", port)
        return
    with pytest.raises(BindError) as info:
        check_port("127.0.0.1", port)
    assert str(info.value) == (
        f"cannot listen on 127.0.0.1:{port}: the port must be between 0 and 65535"
    )
