"""What the TLS tests share: a ``python -m spikard`` process serving TLS, read as it runs."""

from __future__ import annotations

import re
import signal
import ssl
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import anyio.abc
from anyio.streams.tls import TLSAttribute

from ..helpers import read_until
from . import APP, ROOT, spikard_command

_LISTENING = re.compile(rb"spikard listening on https://127\.0\.0\.1:(\d+)")


async def status_of(port: int, context: ssl.SSLContext) -> str:
    """GET /health over TLS: ``"200"``, or what went wrong (the exception's class name)."""
    try:
        with anyio.fail_after(5):
            async with await anyio.connect_tcp(
                "127.0.0.1", port, ssl_context=context, tls_standard_compatible=False
            ) as stream:
                await stream.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                head = await read_until(stream, b"\r\n\r\n")
    except (ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream, OSError) as exc:
        return type(exc).__name__
    return head.split(b" ", 2)[1].decode() if head else "closed"


async def peer_certificate(port: int, context: ssl.SSLContext) -> bytes:
    """The certificate a new TLS connection to ``port`` is shown (DER)."""
    with anyio.fail_after(5):
        async with await anyio.connect_tcp(
            "127.0.0.1", port, ssl_context=context, tls_standard_compatible=False
        ) as stream:
            der = stream.extra(TLSAttribute.peer_certificate_binary)
    assert der is not None
    return der


@dataclass
class Running:
    process: anyio.abc.Process
    port: int
    output: bytearray

    async def wait_for(self, pattern: str, count: int = 1, timeout: float = 10) -> None:
        """Wait until ``pattern`` appears ``count`` times in stderr."""
        with anyio.fail_after(timeout):
            while len(re.findall(pattern.encode(), self.output)) < count:
                await anyio.sleep(0.02)

    async def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(20):
            assert await self.process.wait() == 0, self.output.decode()
        return self.output.decode()


@asynccontextmanager
async def serve_tls(arguments: Sequence[str], listeners: int = 1) -> AsyncIterator[Running]:
    """``python -m spikard APP --port 0 ARGUMENTS``, stderr read all along; killed at the end."""
    process = await anyio.open_process(
        spikard_command(APP, "--port", "0", *arguments),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    output = bytearray()
    try:
        async with anyio.create_task_group() as task_group:

            async def keep_reading() -> None:
                assert process.stderr is not None
                async for chunk in process.stderr:
                    output.extend(chunk)

            task_group.start_soon(keep_reading)
            with anyio.fail_after(20):
                while len(ports := _LISTENING.findall(output)) < listeners:
                    if process.returncode is not None:
                        raise AssertionError(f"server exited early:\n{output.decode()}")
                    await anyio.sleep(0.02)
            yield Running(process, int(ports[0]), output)
            with anyio.fail_after(20):
                await process.wait()
            task_group.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
            with anyio.CancelScope(shield=True):
                await process.wait()
        await process.aclose()
