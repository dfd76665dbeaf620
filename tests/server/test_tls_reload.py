"""SIGHUP reloads the certificate files: open connections keep going on the old certificate,
new ones get the new one; a reload that fails keeps the old one and says so in one ERROR line.
Real ``python -m spikard`` processes on asyncio and trio, one and two workers."""

from __future__ import annotations

import logging
import os
import re
import signal
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
import pytest
import trustme

from spikard import Spikard
from spikard.server.serve import Server
from spikard.server.tls import ReloadingContext, TLSConfig, server_context

from ..helpers import ws_connect
from . import serve_subprocess, spikard_command
from .tls_support import peer_certificate, serve_tls

pytestmark = pytest.mark.parametrize("anyio_backend", ["asyncio"])


@dataclass
class Certificates:
    authority: trustme.CA
    directory: Path

    @property
    def certfile(self) -> Path:
        return self.directory / "server.crt"

    @property
    def keyfile(self) -> Path:
        return self.directory / "server.key"

    def install(self) -> bytes:
        """Put a new certificate and key in place (each file replaced at once); its DER."""
        issued = self.authority.issue_cert("127.0.0.1")
        for path, pem in (
            (self.certfile, issued.cert_chain_pems[0]),
            (self.keyfile, issued.private_key_pem),
        ):
            pem.write_to_path(str(path.with_suffix(".new")))
            os.replace(path.with_suffix(".new"), path)
        return ssl.PEM_cert_to_DER_cert(issued.cert_chain_pems[0].bytes().decode())

    def client(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.authority.configure_trust(context)
        return context


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    return Certificates(trustme.CA(), tmp_path)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
async def test_sighup_reloads_for_new_connections_and_keeps_open_ones(
    anyio_backend: str, backend: str, certificates: Certificates
) -> None:
    first = certificates.install()
    client = certificates.client()
    arguments = ["--backend", backend, "--ssl-certfile", str(certificates.certfile)]
    arguments += ["--ssl-keyfile", str(certificates.keyfile)]
    async with serve_tls(arguments) as server:
        assert await peer_certificate(server.port, client) == first
        async with ws_connect(f"wss://127.0.0.1:{server.port}/echo", ssl=client) as ws:
            await ws.send("before")
            assert await ws.recv() == "before"

            second = certificates.install()
            assert second != first
            server.process.send_signal(signal.SIGHUP)
            await server.wait_for("reloaded the TLS certificate")
            assert await peer_certificate(server.port, client) == second
            await ws.send("after the reload")  # the open socket keeps its (old) session
            assert await ws.recv() == "after the reload"

            certificates.certfile.write_text("not a certificate\n")
            server.process.send_signal(signal.SIGHUP)
            await server.wait_for("TLS reload failed")
            assert await peer_certificate(server.port, client) == second
            await ws.send("after the failed reload")
            assert await ws.recv() == "after the failed reload"
        text = await server.stop()
    assert "Traceback" not in text
    [error] = [line for line in text.splitlines() if " ERROR " in line]
    assert error.endswith(
        "spikard.server: TLS reload failed, keeping the previous certificate: cannot load the TLS "
        f"certificate '{certificates.certfile}': no PEM certificate in it (PEM lib)"
    )
    assert len(re.findall("SIGHUP received: reloading the TLS certificate", text)) == 2
    assert f"reloaded the TLS certificate from '{certificates.certfile}'" in text


async def test_the_supervisor_passes_sighup_to_every_worker(
    anyio_backend: str, certificates: Certificates
) -> None:
    first = certificates.install()
    client = certificates.client()
    arguments = ["--workers", "2", "--ssl-certfile", str(certificates.certfile)]
    arguments += ["--ssl-keyfile", str(certificates.keyfile)]
    async with serve_tls(arguments, listeners=2) as server:
        assert await peer_certificate(server.port, client) == first
        async with ws_connect(f"wss://127.0.0.1:{server.port}/echo", ssl=client) as ws:
            second = certificates.install()
            server.process.send_signal(signal.SIGHUP)
            await server.wait_for("SIGHUP received: passing it to 2 worker")
            await server.wait_for("reloaded the TLS certificate", count=2)
            # the kernel spreads these across both workers: every one shows the new certificate
            for _ in range(12):
                assert await peer_certificate(server.port, client) == second
            await ws.send("still here")
            assert await ws.recv() == "still here"
        text = await server.stop()
    assert "Traceback" not in text
    assert " ERROR " not in text
    assert "restarting" not in text  # no worker died of the signal


async def test_sighup_without_tls_changes_nothing(anyio_backend: str) -> None:
    async with serve_subprocess(drain=True) as served:
        served.process.send_signal(signal.SIGHUP)
        with anyio.fail_after(10):
            while b"no TLS certificate to reload" not in served.output:
                await anyio.sleep(0.02)
        async with ws_connect(served.ws_url("/echo")) as ws:
            await ws.send("still serving")
            assert await ws.recv() == "still serving"
        assert served.process.returncode is None


# In process: what Server.reload_tls does with each kind of context


async def test_reload_tls_in_process(
    anyio_backend: str, certificates: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    certificates.install()
    reloading = ReloadingContext(TLSConfig(str(certificates.certfile), str(certificates.keyfile)))
    before = reloading.context
    assert Server(Spikard(), ssl_context=reloading).reload_tls()
    assert reloading.context is not before
    certificates.keyfile.write_text("")
    current = reloading.context
    assert not reloading.reload()
    assert reloading.context is current
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "TLS reload failed, keeping the previous certificate" in errors[0].getMessage()

    caplog.clear()
    certificates.install()
    own = server_context(certificates.certfile, certificates.keyfile)
    assert not Server(Spikard(), ssl_context=own).reload_tls()
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert "the application gave its own ssl_context" in warning.getMessage()


SLOW_APP = """\
import pathlib
import time

from spikard import Spikard

pathlib.Path("importing").touch()
time.sleep(1.0)
app = Spikard()
"""


async def test_sighup_while_the_app_imports_does_not_kill_the_server(
    anyio_backend: str, tmp_path: Path
) -> None:
    (tmp_path / "slow.py").write_text(SLOW_APP)
    process = await anyio.open_process(
        spikard_command("slow:app", "--port", "0"),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    async with process:
        try:
            with anyio.fail_after(15):
                while not (tmp_path / "importing").exists():
                    await anyio.sleep(0.01)
            process.send_signal(signal.SIGHUP)
            assert process.stderr is not None
            output = bytearray()
            with anyio.fail_after(15):
                while b"spikard listening on" not in output:
                    output += await process.stderr.receive()
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(15):
                async for chunk in process.stderr:
                    output += chunk
                assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
    assert b"Traceback" not in output
