"""``--ssl-ca-certs`` and ``--ssl-cert-reqs`` on the command line (and under ``--workers``),
and the one-line errors of TLS options that do not go together."""

from __future__ import annotations

import re
import signal
import ssl
import subprocess
from pathlib import Path

import anyio
import pytest
import trustme

from . import APP, ROOT, spikard_command
from .tls_support import serve_tls, status_of


def run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        spikard_command(APP, "--port", "0", *arguments),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def pki(tmp_path: Path) -> tuple[trustme.CA, Path, Path]:
    """A CA, the server's certificate and key in one PEM, and the CA's certificate file."""
    authority = trustme.CA()
    authority.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "server.pem")
    )
    authority.cert_pem.write_to_path(str(tmp_path / "clients-ca.pem"))
    return authority, tmp_path / "server.pem", tmp_path / "clients-ca.pem"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(("cert_reqs", "workers"), [("required", "1"), ("2", "2")])
async def test_required_client_certificates_from_the_command_line(
    anyio_backend: str, pki: tuple[trustme.CA, Path, Path], cert_reqs: str, workers: str
) -> None:
    authority, server_pem, ca_pem = pki
    anonymous = ssl.create_default_context()
    authority.configure_trust(anonymous)
    known = ssl.create_default_context()
    authority.configure_trust(known)
    authority.issue_cert("client.example").configure_cert(known)
    arguments = ["--ssl-certfile", str(server_pem), "--ssl-ca-certs", str(ca_pem)]
    arguments += ["--ssl-cert-reqs", cert_reqs, "--workers", workers]
    async with serve_tls(arguments, listeners=int(workers)) as server:
        for _ in range(4):  # under --workers, on either worker
            assert await status_of(server.port, known) == "200"
            assert await status_of(server.port, anonymous) != "200"
        await server.wait_for("the client sent no certificate, and one is required", count=4)
        server.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(20):
            assert await server.process.wait() == 0
    text = server.output.decode()
    assert "Traceback" not in text
    refusals = [line for line in text.splitlines() if "TLS handshake with" in line]
    assert len(refusals) == 4
    assert all(" INFO " in line for line in refusals)
    assert re.search(
        r"TLS handshake with 127\.0\.0\.1:\d+ failed: the client sent no certificate, and one "
        r"is required \(PEER_DID_NOT_RETURN_A_CERTIFICATE\)$",
        refusals[0],
    )


@pytest.mark.parametrize(
    ("arguments", "status", "message"),
    [
        (
            ["--ssl-cert-reqs", "required"],
            1,
            "error: --ssl-cert-reqs optional or required needs --ssl-ca-certs (the CA "
            "certificates that issue the client certificates)",
        ),
        (
            ["--ssl-ca-certs", "{ca}"],
            1,
            "error: --ssl-ca-certs checks client certificates only with --ssl-cert-reqs "
            "optional or required",
        ),
        (
            ["--ssl-ca-certs", "{ca}", "--ssl-cert-reqs", "none"],
            1,
            "error: --ssl-ca-certs checks client certificates only with --ssl-cert-reqs "
            "optional or required",
        ),
        (
            ["--ssl-ca-certs", "{missing}", "--ssl-cert-reqs", "optional"],
            1,
            "error: cannot load the CA certificates '{missing}': No such file or directory",
        ),
    ],
)
def test_tls_options_that_do_not_go_together_are_one_line(
    pki: tuple[trustme.CA, Path, Path], arguments: list[str], status: int, message: str
) -> None:
    _, server_pem, ca_pem = pki
    names = {"ca": str(ca_pem), "missing": str(ca_pem.with_name("missing.pem"))}
    result = run("--ssl-certfile", str(server_pem), *(a.format(**names) for a in arguments))
    assert result.returncode == status
    assert result.stderr.strip().splitlines() == [message.format(**names)]


@pytest.mark.parametrize("option", ["--ssl-ca-certs", "--ssl-cert-reqs"])
def test_client_certificate_options_need_a_certificate(option: str) -> None:
    value = "ca.pem" if option == "--ssl-ca-certs" else "required"
    result = run(option, value)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {option} needs --ssl-certfile"


def test_an_unknown_cert_reqs_is_a_usage_error(pki: tuple[trustme.CA, Path, Path]) -> None:
    result = run("--ssl-certfile", str(pki[1]), "--ssl-cert-reqs", "sometimes")
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "argument --ssl-cert-reqs: unknown client certificate mode 'sometimes': use none, "
        "optional or required"
    )
