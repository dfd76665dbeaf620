"""Behind a real nginx terminating TLS, with the configuration ``docs/scaling.md`` gives.

The client connects from 127.0.0.2 to nginx over TLS; nginx forwards to spikard over plain
HTTP from 127.0.0.1 (trusted by default). Handlers, the access log and the same-origin check
must see the client's address, ``https``/``wss`` and the host the browser used.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from spikard import HandshakeRejected, Request, Spikard, WebSocket
from spikard.testing import TestServerInfo

NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)),
    None,
)

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs it)"),
]

NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {root}/cert.pem;
        ssl_certificate_key {root}/key.pem;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def client_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return context


@pytest.fixture
def nginx(tmp_path: Path, authority: trustme.CA) -> Iterator[tuple[int, int]]:
    """nginx on a free port, proxying to ``upstream`` (the test starts spikard there)."""
    port, upstream = free_port(), free_port()
    certificate = authority.issue_cert("127.0.0.1")
    certificate.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    certificate.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    config = tmp_path / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""
    config.write_text(NGINX_CONF.format(user=user, root=tmp_path, port=port, upstream=upstream))
    process = subprocess.Popen(
        [str(NGINX), "-p", str(tmp_path), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # nginx writes its errors to error.log
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    errors = (
                        (tmp_path / "error.log").read_text()
                        if (tmp_path / "error.log").exists()
                        else ""
                    )
                    pytest.fail(f"nginx did not start: {errors}")
                time.sleep(0.05)
        yield port, upstream
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def build_app() -> Spikard:
    app = Spikard()  # defaults: forwarded_allow_ips=("127.0.0.1",), same-origin handshakes

    @app.get("/whoami")
    def whoami(request: Request) -> dict[str, Any]:
        return {
            "client": request.client.host if request.client else None,
            "scheme": request.scheme,
            "url": request.url,
        }

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        client = socket.client.host if socket.client else ""
        await socket.send(f"{client} {socket.request.scheme}")

    return app


async def test_client_scheme_host_and_origin_through_nginx(
    nginx: tuple[int, int], client_context: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    port, upstream = nginx
    app = build_app()
    proxy = TestServerInfo("127.0.0.1", port, secure=True)
    public = f"https://127.0.0.1:{port}"
    with caplog.at_level(logging.INFO, logger="spikard.access"):
        async with app.test_server(port=upstream):
            reply = await proxy.request(
                "GET", "/whoami?page=1", ssl_context=client_context, local_host="127.0.0.2"
            )
            assert reply.status == 200, reply.text
            assert reply.json() == {
                "client": "127.0.0.2",
                "scheme": "https",
                "url": f"{public}/whoami?page=1",
            }
            async with proxy.connect(
                "/ws",
                headers={"origin": public},
                ssl_context=client_context,
                local_host="127.0.0.2",
            ) as ws:
                assert await ws.receive_text() == "127.0.0.2 wss"
            with pytest.raises(HandshakeRejected) as refused:  # a cross-site page
                async with proxy.connect(
                    "/ws",
                    headers={"origin": f"http://127.0.0.1:{port}"},
                    ssl_context=client_context,
                    local_host="127.0.0.2",
                ):
                    pass
            assert refused.value.status_code == 403
    lines = [r.getMessage() for r in caplog.records if r.name == "spikard.access"]
    assert any(line.startswith("127.0.0.2:") and "/whoami?page=1" in line for line in lines)
    assert any(line.startswith("127.0.0.2:") and '"WEBSOCKET /ws' in line for line in lines)
