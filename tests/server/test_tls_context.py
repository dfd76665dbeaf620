"""The contexts spikard builds: TLS 1.2 at least, ALPN http/1.1, client certificates checked
only when asked for and only against the CAs given; each refusal is one INFO line."""

from __future__ import annotations

import logging
import ssl
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
import trustme
from anyio.streams.tls import TLSAttribute
from hypothesis import given
from hypothesis import strategies as st

from spikard import Request, Spikard, WebSocket, WebSocketMessage
from spikard.server.tls import (
    CERT_REQS,
    TLSConfigError,
    describe_handshake_failure,
    parse_cert_reqs,
    server_context,
)

from ..helpers import read_all, ws_connect
from .tls_support import status_of


def make_app() -> Spikard:
    app = Spikard()

    @app.get("/health")
    async def health(request: Request) -> dict[str, str]:
        return {"status": "ok"}

    @app.websocket("/echo")
    async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
        async for message in socket:
            yield message

    return app


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def files(authority: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The server's certificate and key, and the CA that issues client certificates."""
    where = tmp_path_factory.mktemp("tls")
    server = authority.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(where / "server.crt"))
    server.private_key_pem.write_to_path(str(where / "server.key"))
    authority.cert_pem.write_to_path(str(where / "ca.pem"))
    return {"cert": where / "server.crt", "key": where / "server.key", "ca": where / "ca.pem"}


def client_context(
    authority: trustme.CA, certificate_from: trustme.CA | None = None
) -> ssl.SSLContext:
    """A client trusting ``authority``, with a client certificate from ``certificate_from``."""
    context = ssl.create_default_context()
    authority.configure_trust(context)
    if certificate_from is not None:
        certificate_from.issue_cert("client.example").configure_cert(context)
    return context


def handshake_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "TLS handshake with" in r.getMessage()]


# The context itself


def test_the_minimum_is_tls_1_2_and_no_client_certificate_is_asked_for(
    files: dict[str, Path],
) -> None:
    context = server_context(files["cert"], files["key"])
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE
    assert context.get_ca_certs() == []  # not the system store


def test_an_older_minimum_can_be_asked_for(files: dict[str, Path]) -> None:
    context = server_context(files["cert"], files["key"], minimum_version=ssl.TLSVersion.TLSv1_3)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("none", ssl.CERT_NONE),
        ("optional", ssl.CERT_OPTIONAL),
        ("required", ssl.CERT_REQUIRED),
        ("Required", ssl.CERT_REQUIRED),
        ("0", ssl.CERT_NONE),
        ("1", ssl.CERT_OPTIONAL),
        ("2", ssl.CERT_REQUIRED),
        (2, ssl.CERT_REQUIRED),
    ],
)
def test_cert_reqs_take_names_and_uvicorns_numbers(text: str | int, mode: ssl.VerifyMode) -> None:
    assert parse_cert_reqs(text) == mode


@given(st.text(max_size=12))
def test_cert_reqs_are_a_mode_or_a_value_error(text: str) -> None:
    if text.strip().lower() in (*CERT_REQS, "0", "1", "2"):
        assert isinstance(parse_cert_reqs(text), ssl.VerifyMode)
    else:
        with pytest.raises(ValueError, match="use none, optional or required"):
            parse_cert_reqs(text)


def test_client_certificates_need_the_cas_that_issue_them(files: dict[str, Path]) -> None:
    with pytest.raises(TLSConfigError, match="need ca_certs"):
        server_context(files["cert"], files["key"], cert_reqs=ssl.CERT_REQUIRED)
    with pytest.raises(TLSConfigError, match="only with cert_reqs optional or required"):
        server_context(files["cert"], files["key"], ca_certs=files["ca"])


def test_files_that_cannot_be_loaded_are_one_line(files: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(TLSConfigError) as no_ca:
        server_context(files["cert"], files["key"], ca_certs=missing, cert_reqs=ssl.CERT_OPTIONAL)
    assert str(no_ca.value) == (
        f"cannot load the CA certificates '{missing}': No such file or directory"
    )
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    with pytest.raises(TLSConfigError) as garbage:
        server_context(tmp_path / "garbage.pem", files["key"])
    assert str(garbage.value) == (
        f"cannot load the TLS certificate '{tmp_path}/garbage.pem': no PEM certificate in it "
        "(PEM lib)"
    )
    with pytest.raises(TLSConfigError) as no_key:
        server_context(files["cert"], tmp_path / "garbage.pem")
    assert str(no_key.value) == (
        f"cannot load the TLS certificate '{files['cert']}': the key file "
        f"'{tmp_path}/garbage.pem' has no private key that can be read (not PEM, or a wrong "
        "password) (PEM lib)"
    )
    with pytest.raises(TLSConfigError) as key_missing:
        server_context(files["cert"], missing)
    assert str(key_missing.value) == (
        f"cannot load the TLS certificate '{files['cert']}': cannot read the key file "
        f"'{missing}': No such file or directory"
    )


def test_a_password_protected_key(authority: trustme.CA, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    certificate = authority.issue_cert("127.0.0.1")
    key = serialization.load_pem_private_key(certificate.private_key_pem.bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret"),
    )
    (tmp_path / "key.pem").write_bytes(encrypted)
    certificate.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    server_context(tmp_path / "cert.pem", tmp_path / "key.pem", password="s3cret")
    with pytest.raises(TLSConfigError) as wrong:
        server_context(tmp_path / "cert.pem", tmp_path / "key.pem", password=b"wrong")
    assert "(not PEM, or a wrong password)" in str(wrong.value)
    assert "b'wrong'" not in str(wrong.value)  # the password never appears


# Over sockets


async def test_alpn_settles_on_http_1_1_for_a_client_that_prefers_h2(
    authority: trustme.CA, files: dict[str, Path]
) -> None:
    client = client_context(authority)
    client.set_alpn_protocols(["h2", "http/1.1"])
    async with make_app().test_server(
        ssl_context=server_context(files["cert"], files["key"])
    ) as server:
        with anyio.fail_after(5):
            async with await anyio.connect_tcp(
                "127.0.0.1", server.port, ssl_context=client, tls_standard_compatible=False
            ) as stream:
                assert stream.extra(TLSAttribute.alpn_protocol) == "http/1.1"
                assert stream.extra(TLSAttribute.tls_version) in ("TLSv1.2", "TLSv1.3")
                await stream.send(
                    b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                )
                response = await read_all(stream)
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(b'{"status":"ok"}')


def tls_1_1_client(authority: trustme.CA) -> ssl.SSLContext:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1_1 is deprecated, rightly
        client = client_context(authority)
        client.minimum_version = ssl.TLSVersion.TLSv1_1
        client.maximum_version = ssl.TLSVersion.TLSv1_1
        client.set_ciphers("DEFAULT:@SECLEVEL=0")
    return client


async def test_a_tls_1_1_client_is_refused_in_one_info_line(
    authority: trustme.CA, files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    client = tls_1_1_client(authority)
    # First, that this client really speaks TLS 1.1 here: a server that allows it serves it
    # (a local OpenSSL built without TLS 1.1 cannot make one: then the minimum is all we see).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        lenient = server_context(files["cert"], files["key"], minimum_version=ssl.TLSVersion.TLSv1)
        lenient.set_ciphers("DEFAULT:@SECLEVEL=0")
    async with make_app().test_server(ssl_context=lenient) as server:
        if await status_of(server.port, client) != "200":
            assert server_context(files["cert"]).minimum_version == ssl.TLSVersion.TLSv1_2
            pytest.skip("the local OpenSSL cannot make a TLS 1.1 client")
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    default = server_context(files["cert"], files["key"])
    async with make_app().test_server(ssl_context=default) as server:
        assert await status_of(server.port, client) != "200"
        assert await status_of(server.port, client_context(authority)) == "200"
    [line] = handshake_lines(caplog)
    assert line.levelno == logging.INFO
    assert line.getMessage().endswith(
        "failed: the client offers only TLS versions below TLS 1.2 (UNSUPPORTED_PROTOCOL)"
    )
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


@pytest.mark.parametrize(
    ("cert_reqs", "without", "untrusted"),
    [
        # what a client without a certificate gets, and one with a certificate of another CA
        (ssl.CERT_REQUIRED, "the client sent no certificate", "the client certificate was refused"),
        (ssl.CERT_OPTIONAL, None, "the client certificate was refused"),
        (ssl.CERT_NONE, None, None),
    ],
)
async def test_client_certificates(
    authority: trustme.CA,
    files: dict[str, Path],
    caplog: pytest.LogCaptureFixture,
    cert_reqs: ssl.VerifyMode,
    without: str | None,
    untrusted: str | None,
) -> None:
    caplog.set_level(logging.DEBUG)
    context = server_context(
        files["cert"],
        files["key"],
        ca_certs=files["ca"] if cert_reqs != ssl.CERT_NONE else None,
        cert_reqs=cert_reqs,
    )
    stranger = trustme.CA()
    async with make_app().test_server(ssl_context=context) as server:
        # a trusted client certificate is always welcome, over a WebSocket too
        trusted = client_context(authority, certificate_from=authority)
        assert await status_of(server.port, trusted) == "200"
        async with ws_connect(server.ws_url("/echo"), ssl=trusted) as ws:
            await ws.send("with a certificate")
            assert await ws.recv() == "with a certificate"
        for certificate_from, refusal in ((None, without), (stranger, untrusted)):
            caplog.clear()
            outcome = await status_of(server.port, client_context(authority, certificate_from))
            lines = handshake_lines(caplog)
            if refusal is None:
                assert outcome == "200"
                assert lines == []
            else:
                assert outcome != "200"
                [line] = lines
                assert line.levelno == logging.INFO
                assert refusal in line.getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


def test_describe_keeps_unknown_reasons(files: dict[str, Path]) -> None:
    error = ssl.SSLError(1, "[SSL: SOMETHING_ELSE] something else")
    error.reason = "SOMETHING_ELSE"
    assert describe_handshake_failure(error, server_context(files["cert"], files["key"])) == (
        "SOMETHING_ELSE"
    )
