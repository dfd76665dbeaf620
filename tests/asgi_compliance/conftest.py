"""Fixtures: one server process per app module per server kind, shared by the session.

Every case runs against ``spikard`` and ``spikard-tls``; ``uvicorn`` and ``uvicorn-tls``
(the reference) run only when ``SPIKARD_COMPLIANCE_REFERENCE=1`` is set.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from .servers import KINDS, REFERENCE_ENV, Certificates, Target, start

RAW = "tests.asgi_compliance.app_raw:app"
STARLETTE = "tests.asgi_compliance.app_starlette:app"
FASTAPI = "tests.asgi_compliance.app_fastapi:app"


class Pool:
    """Started servers by (app, kind, options): started on first use, stopped at the end."""

    def __init__(self, log_dir: Path, certs: Certificates) -> None:
        self.log_dir = log_dir
        self.certs = certs
        self.running: dict[tuple[str, str, tuple[str, ...]], Target] = {}

    def get(self, app: str, kind: str, extra: tuple[str, ...] = ()) -> Target:
        key = (app, kind, extra)
        target = self.running.get(key)
        if target is None or not target.alive():
            target = start(kind, app, self.log_dir, self.certs, extra)
            self.running[key] = target
        return target

    def close(self) -> None:
        for target in self.running.values():
            target.stop()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("compliance-tls")
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    issued.private_key_pem.write_to_path(str(keyfile))
    issued.cert_chain_pems[0].write_to_path(str(certfile))
    for extra in issued.cert_chain_pems[1:]:
        with certfile.open("ab") as file:
            file.write(extra.bytes())
    cafile = folder / "ca.pem"
    authority.cert_pem.write_to_path(str(cafile))
    context = ssl.create_default_context(cafile=str(cafile))
    return Certificates(certfile, keyfile, cafile, context)


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compliance-logs")


@pytest.fixture(scope="session")
def pool(log_dir: Path, certs: Certificates) -> Iterator[Pool]:
    servers = Pool(log_dir, certs)
    yield servers
    servers.close()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """The server under test; the uvicorn reference only with SPIKARD_COMPLIANCE_REFERENCE=1."""
    name = str(request.param)
    if name.startswith("uvicorn") and os.environ.get(REFERENCE_ENV) != "1":
        pytest.skip(f"reference server: set {REFERENCE_ENV}=1")
    return name


@pytest.fixture
def raw(pool: Pool, kind: str) -> Target:
    return pool.get(RAW, kind)


@pytest.fixture
def starlette(pool: Pool, kind: str) -> Target:
    return pool.get(STARLETTE, kind)


@pytest.fixture
def fastapi(pool: Pool, kind: str) -> Target:
    return pool.get(FASTAPI, kind)
