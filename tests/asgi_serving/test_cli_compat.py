"""uvicorn's command-line options on ``python -m spikard module:app`` (issue 12).

Each test starts the real CLI in a subprocess against the small ASGI app below (this module
is also the target the subprocess imports) and checks what a client sees.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from spikard import Spikard
from spikard.asgi.serving import ASGIApplication, Receive, Scope, Send
from spikard.server.cli import (
    RequestLimit,
    _header,
    _worker_arguments,
    build_parser,
    call_factory,
    resolve_app,
)

from ..server import ROOT, serve_subprocess, spikard_command

THIS = "tests.asgi_serving.test_cli_compat"
logger = logging.getLogger("tests.cli_compat")
APP = f"{THIS}:app"
ENV_NAME = "SPIKARD_COMPAT_VALUE"
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the client side


def parse(*options: str) -> argparse.Namespace:
    return build_parser().parse_args(["m:app", *options])


# ---- the application the subprocess serves ---------------------------------------------------


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer with the parts of the scope the tests look at, as JSON; ``/hang`` never ends."""
    if scope["type"] != "http":
        return
    if scope["path"].endswith("/hang"):
        await anyio.sleep(60)
    logger.debug("debug line from the app")
    shown: dict[str, Any] = {
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "root_path": scope["root_path"],
        "client": scope["client"][0],
        "scheme": scope["scheme"],
        "env": os.environ.get(ENV_NAME),
    }
    body = json.dumps(shown).encode()
    headers = [(b"content-type", b"application/json"), (b"x-app", b"app")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def make_app() -> Callable[[Scope, Receive, Send], Any]:
    """A factory (``--factory``): returns :func:`app`."""
    return app


# ---- helpers ---------------------------------------------------------------------------------


async def get(path: str, *options: str, **request: Any) -> httpx.Response:
    """Serve :func:`app` with ``options`` and GET ``path`` from it once."""
    async with serve_subprocess(options, app=APP) as served, httpx.AsyncClient() as http:
        return await http.get(f"http://127.0.0.1:{served.port}{path}", **request)


async def get_then_stop(path: str, *options: str) -> tuple[httpx.Response, str]:
    """GET ``path``, stop the server with SIGTERM; the response and all the server printed."""
    async with serve_subprocess(options, app=APP) as served:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{served.port}{path}")
        served.process.send_signal(signal.SIGTERM)
        assert await served.wait(15) == 0
    return response, served.output.decode()


def fails(*args: str) -> str:
    """Run the CLI, expecting it to refuse to start with status 1; what it printed."""
    result = subprocess.run(
        spikard_command(*args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.strip()


async def read_until_closed(stream: anyio.abc.ByteStream) -> bytes:
    received = bytearray()
    while True:
        try:
            received += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return bytes(received)


# ---- --root-path -----------------------------------------------------------------------------


@asyncio_only
async def test_root_path_is_in_every_scope_and_its_path() -> None:
    scope = (await get("/items/1", "--root-path", "/api/")).json()
    assert (scope["path"], scope["raw_path"], scope["root_path"]) == (
        "/api/items/1",
        "/api/items/1",
        "/api",
    )


@asyncio_only
async def test_without_root_path_the_scope_has_none() -> None:
    scope = (await get("/items/1")).json()
    assert (scope["path"], scope["raw_path"], scope["root_path"]) == ("/items/1", "/items/1", "")


# ---- --factory, --app-dir, --env-file --------------------------------------------------------


async def get_from(target: str, *options: str) -> httpx.Response:
    async with serve_subprocess(options, app=target) as served, httpx.AsyncClient() as http:
        return await http.get(f"http://127.0.0.1:{served.port}/")


@asyncio_only
async def test_factory_and_a_factory_that_fails() -> None:
    response = await get_from(f"{THIS}:make_app", "--factory")
    assert response.status_code == 200
    assert "is not a spikard application" in fails(f"{THIS}:make_app", "--port", "0")
    with pytest.raises(SystemExit, match="--factory: 'm:x' is not callable"):
        call_factory(42, "m:x")
    with pytest.raises(SystemExit, match="--factory: calling 'm:x' raised ZeroDivisionError"):
        call_factory(lambda: 1 / 0, "m:x")


@asyncio_only
async def test_app_dir_is_searched_first(tmp_path: Path) -> None:
    (tmp_path / "compat_elsewhere.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'from app-dir'})\n"
    )
    response = await get_from("compat_elsewhere:app", "--app-dir", str(tmp_path))
    assert response.text == "from app-dir"
    assert "could not import module 'compat_elsewhere'" in fails(
        "compat_elsewhere:app", "--port", "0"
    )
    missing = tmp_path / "nowhere"
    assert fails(APP, "--app-dir", str(missing)) == (
        f"error: --app-dir {str(missing)!r} is not a directory"
    )


@asyncio_only
async def test_env_file_sets_variables_before_the_import(tmp_path: Path) -> None:
    env_file = tmp_path / "settings.env"
    env_file.write_text(f"# settings\n{ENV_NAME}=from the env file\n")
    response = await get("/", "--env-file", str(env_file))
    assert response.json()["env"] == "from the env file"
    missing = tmp_path / "absent.env"
    assert fails(APP, "--env-file", str(missing)) == (
        f"error: --env-file {str(missing)!r}: no such file"
    )


# ---- timers: --timeout-keep-alive, --timeout-graceful-shutdown --------------------------------


async def idle_close_seconds(*options: str) -> float:
    """Seconds from a keep-alive response until the server closes the idle connection."""
    async with serve_subprocess(options, app=APP, drain=True) as served:
        stream = await anyio.connect_tcp("127.0.0.1", served.port)
        async with stream:
            await stream.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            received = bytearray()
            with anyio.fail_after(5):
                while b"}" not in received:  # the JSON body ends the response
                    received += await stream.receive()
            started = time.monotonic()
            with anyio.fail_after(15):
                assert await read_until_closed(stream) == b""
            return time.monotonic() - started


@asyncio_only
async def test_timeout_keep_alive_closes_an_idle_connection() -> None:
    assert 0.5 < await idle_close_seconds("--timeout-keep-alive", "1") < 2.5


@asyncio_only
@pytest.mark.slow
async def test_without_timeout_keep_alive_an_idle_connection_gets_5_seconds() -> None:
    assert 4.0 < await idle_close_seconds() < 7.0


@asyncio_only
async def test_timeout_graceful_shutdown_bounds_the_drain() -> None:
    async with serve_subprocess(
        ["--timeout-graceful-shutdown", "1", "--lifespan", "off"], app=APP
    ) as served:
        stream = await anyio.connect_tcp("127.0.0.1", served.port)
        async with stream:
            await stream.send(b"GET /hang HTTP/1.1\r\nhost: x\r\n\r\n")
            await anyio.sleep(0.3)  # the request is in the app
            started = time.monotonic()
            served.process.send_signal(signal.SIGTERM)
            assert await served.wait(15) == 0
            elapsed = time.monotonic() - started
    assert 0.8 < elapsed < 5.0  # the default would wait 10 s for the app


# ---- limits: --backlog, --h11-max-incomplete-event-size, --limit-max-requests, --ws-max-queue --


@asyncio_only
@pytest.mark.skipif(shutil.which("ss") is None, reason="reads the backlog with ss")
async def test_backlog_is_the_listen_backlog() -> None:
    async with serve_subprocess(["--backlog", "17"], app=APP) as served:
        listing = await anyio.run_process(["ss", "-Hltn", f"sport = :{served.port}"])
    send_queues = {line.split()[2] for line in listing.stdout.decode().splitlines() if line}
    assert send_queues == {"17"}  # ss shows a listener's backlog as its Send-Q


@asyncio_only
async def test_h11_max_incomplete_event_size_bounds_the_head() -> None:
    async with serve_subprocess(["--h11-max-incomplete-event-size", "1024"], app=APP) as served:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.port}") as http:
            small = await http.get("/", headers={"x-pad": "a" * 500})
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.port}") as http:
            large = await http.get("/", headers={"x-pad": "a" * 2000})
    assert (small.status_code, large.status_code) == (200, 431)


@asyncio_only
async def test_limit_max_requests_stops_the_server_gracefully() -> None:
    async with serve_subprocess(["--limit-max-requests", "2"], app=APP) as served:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.port}") as http:
            first = await http.get("/1")
            second = await http.get("/2")
        assert await served.wait(15) == 0
    assert [first.status_code, second.status_code] == [200, 200]
    assert second.json()["path"] == "/2"  # the last request is answered, not cut
    assert "--limit-max-requests 2 reached: shutting down" in served.output.decode()


def test_ws_max_queue_and_h11_size_configure_the_adapter() -> None:
    served = resolve_app(
        app, "m:app", parse("--ws-max-queue", "3", "--h11-max-incomplete-event-size", "4096")
    )
    assert isinstance(served, ASGIApplication)
    assert served.websocket_config.max_queue == 3
    assert served.http_config.max_header_bytes == 4096


# ---- logging: --access-log, --log-config -----------------------------------------------------


@asyncio_only
@pytest.mark.parametrize(("option", "logged"), [((), True), (("--no-access-log",), False)])
async def test_no_access_log_leaves_out_the_request_lines(
    option: tuple[str, ...], logged: bool
) -> None:
    response, output = await get_then_stop("/seen?x=1", *option)
    assert response.status_code == 200
    assert ('"GET /seen?x=1 HTTP/1.1" 200' in output) is logged
    assert "spikard listening on" in output  # the other INFO lines stay


@asyncio_only
async def test_log_config_formats_the_log_lines(tmp_path: Path) -> None:
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "CONFIGURED %(name)s | %(message)s"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": "INFO"},
    }
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(config))
    _, output = await get_then_stop("/", "--log-config", str(path))
    assert "CONFIGURED spikard.server | spikard listening on http://127.0.0.1:" in output
    assert "CONFIGURED spikard.access |" in output
    assert "INFO" not in output  # spikard's own format is not used
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert fails(APP, "--log-config", str(broken)).startswith(
        f"error: --log-config {str(broken)!r}: JSONDecodeError"
    )


# ---- headers: --proxy-headers, --server-header, --date-header, --header ------------------------


@pytest.mark.parametrize(
    ("options", "client"),
    [((), "10.1.2.3"), (("--proxy-headers",), "10.1.2.3"), (("--no-proxy-headers",), "127.0.0.1")],
)
@asyncio_only
async def test_proxy_headers(options: tuple[str, ...], client: str) -> None:
    forwarded = {"x-forwarded-for": "10.1.2.3", "x-forwarded-proto": "https"}
    scope = (await get("/", *options, headers=forwarded)).json()
    assert scope["client"] == client
    assert scope["scheme"] == ("https" if client == "10.1.2.3" else "http")


@pytest.mark.parametrize(
    ("options", "server"),
    [((), None), (("--server-header",), "spikard"), (("--no-server-header",), None)],
)
@asyncio_only
async def test_server_header(options: tuple[str, ...], server: str | None) -> None:
    response = await get("/", *options)
    assert response.headers.get("server") == server


@asyncio_only
async def test_date_header_is_always_sent() -> None:
    response = await get("/", "--no-date-header")
    assert response.status_code == 200
    assert response.headers["date"].endswith(" GMT")


@asyncio_only
async def test_default_headers() -> None:
    options = ("--header", "X-Deploy: blue", "--header", "x-app:cli", "--header", "x-empty:")
    response = await get("/", *options)
    assert response.headers["x-deploy"] == "blue"
    assert response.headers["x-app"] == "app"  # the app's own header wins
    assert response.headers.get_list("x-app") == ["app"]
    assert response.headers["x-empty"] == ""


@pytest.mark.parametrize(
    "header",
    ["no-colon", ":value", "bad name:x", "x:a\x01b", "Content-Length: 3", "connection:close"],
)
def test_a_malformed_header_is_a_usage_error(header: str) -> None:
    with pytest.raises(SystemExit) as raised:
        parse("--header", header)
    assert raised.value.code == 2


@given(st.text(max_size=40))
def test_a_header_option_is_a_valid_field_or_a_usage_error(text: str) -> None:
    try:
        name, value = _header(text)
    except argparse.ArgumentTypeError:
        return
    assert name
    assert name == name.lower()
    assert not set(name) & set(b' \t\r\n:()<>@,;"/[]?={}')
    assert not any(byte < 0x20 and byte != 0x09 for byte in value)
    assert name not in (b"content-length", b"transfer-encoding", b"connection")


# ---- TLS: --ssl-keyfile-password -------------------------------------------------------------

_TLS_LISTENING = re.compile(rb"listening on https://127\.0\.0\.1:(\d+)")


@asynccontextmanager
async def serve_tls(*options: str) -> AsyncIterator[int]:
    """``python -m spikard APP --port 0 options`` over TLS; yields the port."""
    async with await anyio.open_process(
        spikard_command(APP, "--port", "0", *options),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    ) as process:
        assert process.stderr is not None
        output = bytearray()
        try:
            with anyio.fail_after(15):
                while (found := _TLS_LISTENING.search(output)) is None:
                    output += await process.stderr.receive()
            yield int(found.group(1))
        finally:
            process.kill()


@asyncio_only
async def test_ssl_keyfile_password_decrypts_the_key(tmp_path: Path) -> None:
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1")
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"open sesame"),
    )
    keyfile = tmp_path / "key.pem"
    keyfile.write_bytes(encrypted)
    certfile = tmp_path / "cert.pem"
    certfile.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    tls = ("--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile))
    async with (
        serve_tls(*tls, "--ssl-keyfile-password", "open sesame") as port,
        httpx.AsyncClient(verify=client_context) as http,
    ):
        response = await http.get(f"https://127.0.0.1:{port}/")
    assert response.json()["scheme"] == "https"
    wrong = fails(APP, "--port", "0", *tls, "--ssl-keyfile-password", "wrong")
    assert wrong.startswith(f"error: cannot load the TLS certificate {str(certfile)!r}")
    assert "\n" not in wrong
    alone = fails(APP, "--ssl-keyfile-password", "x")
    assert alone == "error: --ssl-keyfile-password needs --ssl-certfile"


# ---- the event loop, and what spikard does not have --------------------------------------------


@asyncio_only
async def test_loop_uvloop_serves_on_uvloop() -> None:
    pytest.importorskip("uvloop")
    _, output = await get_then_stop("/", "--loop", "uvloop")
    assert "starting on asyncio (uvloop)" in output


@asyncio_only
async def test_loop_asyncio_keeps_asyncios_own_loop() -> None:
    _, output = await get_then_stop("/", "--loop", "asyncio")
    assert "starting on asyncio " in output or "starting on asyncio\n" in output
    assert "uvloop" not in output


def test_loop_needs_the_asyncio_backend() -> None:
    assert fails(APP, "--loop", "asyncio", "--backend", "trio") == (
        "error: --loop asyncio needs --backend asyncio"
    )


@asyncio_only
async def test_http_ws_and_use_colors_are_accepted() -> None:
    options = ("--http", "h11", "--ws", "wsproto", "--no-use-colors", "--date-header")
    response = await get("/", *options)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--reload",), "error: --reload is not supported: spikard does not reload code"),
        (("--uds", "/tmp/s.sock"), "error: --uds is not supported: spikard listens on TCP"),
        (("--fd", "3"), "error: --fd is not supported: spikard listens on TCP"),
    ],
)
def test_unsupported_options_are_one_line(options: tuple[str, ...], message: str) -> None:
    stderr = fails(APP, *options)
    assert stderr.startswith(message)
    assert "\n" not in stderr


# ---- which apps the options apply to ---------------------------------------------------------


def test_options_for_every_app_configure_a_spikard_app() -> None:
    served = resolve_app(
        Spikard(),
        "m:app",
        parse(
            "--timeout-keep-alive",
            "2",
            "--timeout-graceful-shutdown",
            "3",
            "--backlog",
            "64",
            "--no-proxy-headers",
            "--server-header",
        ),
    )
    assert isinstance(served, Spikard)
    config = served.http_config
    assert (config.keep_alive_timeout, config.shutdown_timeout, config.backlog) == (2, 3, 64)
    assert config.forwarded_allow_ips == ()
    assert config.server_header == "spikard"


@pytest.mark.parametrize(
    "options",
    [
        ("--root-path", "/api"),
        ("--header", "x:y"),
        ("--limit-max-requests", "5"),
        ("--ws-max-queue", "4"),
        ("--h11-max-incomplete-event-size", "100"),
    ],
)
def test_asgi_only_options_are_refused_for_a_spikard_app(options: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit, match=f"{options[0]} configures the server for a plain ASGI"):
        resolve_app(Spikard(), "m:app", parse(*options))


@pytest.mark.parametrize(
    "options",
    [
        ("--timeout-keep-alive", "0"),
        ("--timeout-graceful-shutdown", "-1"),
        ("--backlog", "0"),
        ("--ws-max-queue", "x"),
        ("--loop", "zuvloop"),
    ],
)
def test_bad_values_are_usage_errors(options: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as raised:
        parse(*options)
    assert raised.value.code == 2


# ---- --workers passes the options on ---------------------------------------------------------

_FORWARDED_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "--root-path": st.sampled_from(["/api", "/Mixed/Case", "/a b"]),
        "--app-dir": st.sampled_from([".", "/tmp/x y"]),
        "--timeout-keep-alive": st.sampled_from(["1", "2.5"]),
        "--timeout-graceful-shutdown": st.sampled_from(["3", "0.5"]),
        "--backlog": st.sampled_from(["1", "64"]),
        "--limit-max-requests": st.sampled_from(["1", "1000"]),
        "--ws-max-queue": st.sampled_from(["1", "32"]),
        "--h11-max-incomplete-event-size": st.sampled_from(["100", "65536"]),
        "--loop": st.sampled_from(["auto", "asyncio", "uvloop"]),
        "--log-config": st.sampled_from(["log.json", "log.ini"]),
        "--ws-per-message-deflate": st.sampled_from(["true", "false"]),
        "--forwarded-allow-ips": st.sampled_from(["*", "10.0.0.0/8,127.0.0.1"]),
    },
)
_SWITCHES = st.lists(
    st.sampled_from(
        [
            "--factory",
            "--access-log",
            "--no-access-log",
            "--proxy-headers",
            "--no-proxy-headers",
            "--server-header",
            "--no-server-header",
        ]
    ),
    unique=True,
)
_HEADERS = st.lists(st.sampled_from(["x-a:1", "X-B: two words", "x-c:"]), max_size=3)


@given(options=_FORWARDED_OPTIONS, switches=_SWITCHES, headers=_HEADERS)
def test_workers_get_the_same_options(
    options: dict[str, str], switches: list[str], headers: list[str]
) -> None:
    argv = [part for pair in options.items() for part in pair] + switches
    for header in headers:
        argv += ["--header", header]
    original = parse(*argv)
    again = parse(*_worker_arguments(original))
    for name in (
        "root_path",
        "app_dir",
        "timeout_keep_alive",
        "timeout_graceful_shutdown",
        "backlog",
        "limit_max_requests",
        "ws_max_queue",
        "h11_max_incomplete_event_size",
        "loop",
        "log_config",
        "ws_per_message_deflate",
        "forwarded_allow_ips",
        "factory",
        "access_log",
        "proxy_headers",
        "server_header",
        "header",
    ):
        assert getattr(again, name) == getattr(original, name), name


@asyncio_only
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads load")
async def test_two_workers_serve_with_the_options() -> None:
    options = ["--workers", "2", "--root-path", "/Mount", "--no-access-log"]
    async with serve_subprocess(options, app=APP, drain=True) as served:
        with anyio.fail_after(20):
            while True:  # the workers start one after the other
                try:
                    async with httpx.AsyncClient() as http:
                        response = await http.get(f"http://127.0.0.1:{served.port}/x")
                    break
                except httpx.ConnectError:
                    await anyio.sleep(0.1)
        await anyio.sleep(0.5)
        output = bytes(served.output).decode()
    assert response.json()["root_path"] == "/Mount"
    assert '"GET /x HTTP/1.1"' not in output


@asyncio_only
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads load")
async def test_workers_that_reach_limit_max_requests_are_replaced() -> None:
    options = ["--workers", "2", "--limit-max-requests", "1"]
    answered: list[str] = []
    async with serve_subprocess(options, app=APP, drain=True) as served:
        with anyio.fail_after(30):
            while len(answered) < 6:
                try:
                    async with httpx.AsyncClient() as http:
                        response = await http.get(f"http://127.0.0.1:{served.port}/n")
                    answered.append(response.json()["path"])
                except httpx.TransportError:  # a worker is being replaced
                    await anyio.sleep(0.05)
        output = bytes(served.output).decode()
    assert answered == ["/n"] * 6
    assert output.count("served its --limit-max-requests; starting a new one") >= 4
    assert "keep crashing" not in output
    assert "restarting" not in output  # no worker counted as crashed


def test_limit_max_requests_jitter_adds_up_to_n_per_process() -> None:
    options = parse("--limit-max-requests", "10", "--limit-max-requests-jitter", "3")
    limits = set()
    for _ in range(200):
        served = resolve_app(app, "m:app", options)
        assert isinstance(served, ASGIApplication)
        assert isinstance(served.app, RequestLimit)
        limits.add(served.app.limit)
    assert limits == {10, 11, 12, 13}
    with pytest.raises(SystemExit, match="--limit-max-requests-jitter needs --limit-max-requests"):
        resolve_app(app, "m:app", parse("--limit-max-requests-jitter", "3"))


def test_uvicorns_interface_names() -> None:
    served = resolve_app(Spikard(), "m:app", parse("--interface", "asgi3"))
    assert isinstance(served, ASGIApplication)  # asgi3 is asgi: through the adapter
    for interface in ("asgi2", "wsgi"):
        with pytest.raises(SystemExit, match=f"--interface {interface} is not supported"):
            resolve_app(app, "m:app", parse("--interface", interface))


@asyncio_only
@pytest.mark.parametrize(("level", "shown"), [("trace", True), ("info", False)])
async def test_log_level_trace_is_debug(level: str, shown: bool) -> None:
    _, output = await get_then_stop("/", "--log-level", level)
    assert ("tests.cli_compat: debug line from the app" in output) is shown
