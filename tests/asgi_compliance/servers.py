"""Server processes under test: ``python -m spikard`` or ``uvicorn``, plain or TLS, on 127.0.0.1.

Each process is started from the command line as a user would start it, on a port picked
here, and is ready once the port accepts a connection (every wait is bounded).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("spikard", "spikard-tls", "uvicorn", "uvicorn-tls")
REFERENCE_ENV = "SPIKARD_COMPLIANCE_REFERENCE"
_READY_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class Certificates:
    """A self-signed authority's server certificate for 127.0.0.1, and a client context."""

    certfile: Path
    keyfile: Path
    cafile: Path
    client_context: ssl.SSLContext


_WS_CONTEXTS: dict[int, ssl.SSLContext] = {}


def _capped(context: ssl.SSLContext) -> ssl.SSLContext:
    """A client context trusting what ``context`` trusts, at most TLS 1.2."""
    capped = ssl.create_default_context(cadata=_trusted_pem(context))
    capped.maximum_version = ssl.TLSVersion.TLSv1_2
    return capped


def _trusted_pem(context: ssl.SSLContext) -> str:
    return "".join(ssl.DER_cert_to_PEM_cert(der) for der in context.get_ca_certs(binary_form=True))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def command(
    kind: str, app: str, port: int, certs: Certificates | None, extra: Sequence[str]
) -> list[str]:
    """The command line that serves ``app`` with the server ``kind``."""
    server = ["-m", "spikard"] if kind.startswith("spikard") else ["-m", "uvicorn"]
    args = [sys.executable, *server, app, "--host", "127.0.0.1", "--port", str(port)]
    if kind.endswith("-tls"):
        assert certs is not None
        args += ["--ssl-certfile", str(certs.certfile), "--ssl-keyfile", str(certs.keyfile)]
    return [*args, *extra]


@dataclass
class Target:
    """One running server process: where it listens and how clients reach it."""

    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    client_context: ssl.SSLContext | None
    _log: IO[bytes] = field(repr=False)

    @property
    def tls(self) -> bool:
        return self.client_context is not None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def ws_url(self, path: str) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}{path}"

    def http(self, timeout: float = 10, **kwargs: Any) -> httpx.Client:
        verify: ssl.SSLContext | bool = self.client_context or True
        return httpx.Client(base_url=self.url, verify=verify, timeout=timeout, **kwargs)

    def async_http(self, **kwargs: Any) -> httpx.AsyncClient:
        verify: ssl.SSLContext | bool = self.client_context or True
        return httpx.AsyncClient(base_url=self.url, verify=verify, timeout=10, **kwargs)

    def ws_options(self) -> dict[str, Any]:
        """Keyword arguments for ``websockets.sync.client.connect``.

        Over TLS the context is capped at TLS 1.2: the sync client reads its SSL socket in a
        thread while the caller writes it, and under TLS 1.3 the tickets a server sends after
        the handshake make those two race on one OpenSSL object (not safe for it), which
        stalls a handshake now and then under uvicorn and spikard alike.
        test_websocket.py::test_tls_1_3_websocket covers TLS 1.3 with the asyncio client.
        """
        options: dict[str, Any] = {"open_timeout": 10, "close_timeout": 5, "max_size": None}
        if self.client_context is not None:
            options["ssl"] = _WS_CONTEXTS.setdefault(
                id(self.client_context), _capped(self.client_context)
            )
        return options

    @contextlib.contextmanager
    def raw(self, timeout: float = 5.0) -> Iterator[socket.socket]:
        """A plain (or TLS) socket connected to the server."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            if self.client_context is not None:
                sock = self.client_context.wrap_socket(sock, server_hostname="127.0.0.1")
            yield sock
        finally:
            sock.close()

    def log(self) -> str:
        """What the process printed so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop the process (SIGTERM, then SIGKILL after a bound); return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(_STOP_TIMEOUT)
        self._log.close()
        return int(self.process.returncode)


def start(
    kind: str,
    app: str,
    log_dir: Path,
    certs: Certificates | None,
    extra: Sequence[str] = (),
    *,
    wait_ready: bool = True,
) -> Target:
    """Start ``app`` under ``kind``; with ``wait_ready``, return once the port accepts."""
    port = free_port()
    log_path = log_dir / f"{kind}-{app.replace(':', '-')}-{port}.log"
    log = log_path.open("wb")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command(kind, app, port, certs, extra),
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    context = certs.client_context if kind.endswith("-tls") and certs is not None else None
    target = Target(kind, port, process, log_path, context, log)
    if wait_ready:
        wait_until_ready(target)
    return target


def wait_until_ready(target: Target, timeout: float = _READY_TIMEOUT) -> None:
    """Poll the port until it accepts; fail with the log if the process exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not target.alive():
            target.stop()
            raise AssertionError(f"{target.kind} exited early:\n{target.log()}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", target.port), 0.5),
        ):
            return
        time.sleep(0.05)
    target.stop(signal.SIGKILL)
    raise AssertionError(f"{target.kind} not ready after {timeout} s:\n{target.log()}")


def wait_exit(target: Target, timeout: float) -> int | None:
    """Wait at most ``timeout`` for the process to exit by itself; its code, or None."""
    try:
        return int(target.process.wait(timeout))
    except subprocess.TimeoutExpired:
        return None
