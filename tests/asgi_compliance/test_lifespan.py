"""Lifespan: startup before serving, state into every scope, shutdown, failures, modes."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from .app_lifespan import FAILURE, SHUTDOWN_FAILURE, STARTED, STOPPED
from .conftest import Pool
from .servers import Certificates, Target, start, wait_exit

APP = "tests.asgi_compliance.app_lifespan:app"
FAILING = "tests.asgi_compliance.app_lifespan:failing"
UNSUPPORTED = "tests.asgi_compliance.app_lifespan:unsupported"
RETURNS = "tests.asgi_compliance.app_lifespan:returns_after_startup"
SHUTDOWN_FAILS = "tests.asgi_compliance.app_lifespan:shutdown_fails"
RAISES = "tests.asgi_compliance.app_lifespan:raises_in_startup"
SLOW = "tests.asgi_compliance.app_lifespan:slow_startup"


def state_keys(target: Target, path: str = "/state") -> list[str] | None:
    with target.http() as client:
        keys: list[str] | None = client.get(path).json()["keys"]
    return keys


def test_startup_runs_before_the_first_request(
    kind: str, log_dir: Path, certs: Certificates
) -> None:
    target = start(kind, APP, log_dir, certs)  # the first accepted connection already sees state
    try:
        assert state_keys(target) == ["shared", "token"]
        assert STARTED in target.log()
    finally:
        target.stop()


def test_state_reaches_websocket_scopes(pool: Pool, kind: str) -> None:
    target = pool.get(APP, kind)
    with connect(target.ws_url("/ws"), **target.ws_options()) as ws:
        assert json.loads(ws.recv(timeout=5)) == ["shared", "token"]


def test_state_is_a_shallow_copy_per_request(pool: Pool, kind: str) -> None:
    target = pool.get(APP, kind)
    assert "added-by-request" in (state_keys(target, "/mutate") or [])
    assert state_keys(target) == ["shared", "token"]  # a key set by a request does not leak


def test_shutdown_runs_on_sigterm_and_exit_is_clean(
    kind: str, log_dir: Path, certs: Certificates
) -> None:
    target = start(kind, APP, log_dir, certs)
    assert state_keys(target) == ["shared", "token"]
    code = target.stop(signal.SIGTERM)
    assert STOPPED in target.log()
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it shut down


def test_shutdown_on_sigint(kind: str, log_dir: Path, certs: Certificates) -> None:
    target = start(kind, APP, log_dir, certs)
    code = target.stop(signal.SIGINT)
    assert STOPPED in target.log()
    assert code == 0


def test_startup_failure_exits_non_zero_with_the_message(
    kind: str, log_dir: Path, certs: Certificates
) -> None:
    target = start(kind, FAILING, log_dir, certs, wait_ready=False)
    code = wait_exit(target, 15)
    target.stop()
    assert code is not None, "the server kept running after lifespan.startup.failed"
    assert code != 0
    assert FAILURE in target.log()


def test_startup_failure_never_opens_the_port(
    kind: str, log_dir: Path, certs: Certificates
) -> None:
    target = start(kind, FAILING, log_dir, certs, wait_ready=False)
    wait_exit(target, 15)
    target.stop()
    with pytest.raises(httpx.ConnectError), target.http() as client:
        client.get("/state")


def test_lifespan_off_never_starts(pool: Pool, kind: str) -> None:
    target = pool.get(APP, kind, ("--lifespan", "off"))
    keys = state_keys(target)
    assert keys in (None, [])
    assert STARTED not in target.log()


def test_lifespan_on_runs_it(pool: Pool, kind: str) -> None:
    target = pool.get(APP, kind, ("--lifespan", "on"))
    assert state_keys(target) == ["shared", "token"]


def test_auto_serves_an_app_without_lifespan(pool: Pool, kind: str) -> None:
    target = pool.get(UNSUPPORTED, kind)
    assert state_keys(target) in (None, [])
    assert target.alive()


def test_auto_logs_nothing_fatal_for_an_app_without_lifespan(pool: Pool, kind: str) -> None:
    target = pool.get(UNSUPPORTED, kind)
    state_keys(target)
    assert "Traceback" not in target.log()


def test_lifespan_on_with_an_app_without_lifespan_fails(
    kind: str, log_dir: Path, certs: Certificates
) -> None:
    target = start(kind, UNSUPPORTED, log_dir, certs, ("--lifespan", "on"), wait_ready=False)
    code = wait_exit(target, 15)
    target.stop()
    assert code is not None
    assert code != 0


def test_lifespan_off_serves_an_app_without_lifespan(pool: Pool, kind: str) -> None:
    target = pool.get(UNSUPPORTED, kind, ("--lifespan", "off"))
    assert state_keys(target) in (None, [])


def test_app_returning_after_startup_is_served_and_stops(
    kind: str, log_dir: Path, certs: Certificates
) -> None:
    target = start(kind, RETURNS, log_dir, certs)
    assert state_keys(target) == ["token"]
    started = time.monotonic()
    code = target.stop(signal.SIGTERM)
    assert time.monotonic() - started < 5
    assert code in (0, -signal.SIGTERM)


def test_shutdown_failure_is_reported(kind: str, log_dir: Path, certs: Certificates) -> None:
    target = start(kind, SHUTDOWN_FAILS, log_dir, certs)
    assert state_keys(target) == []
    target.stop(signal.SIGTERM)
    assert SHUTDOWN_FAILURE in target.log()


def test_raise_during_startup_under_auto_is_served_without_lifespan(pool: Pool, kind: str) -> None:
    """uvicorn's reading of ``auto``: a lifespan that raises means "unsupported"."""
    target = pool.get(RAISES, kind)
    assert state_keys(target) in (None, [])


def test_raise_during_startup_under_on_is_fatal(
    kind: str, log_dir: Path, certs: Certificates
) -> None:
    target = start(kind, RAISES, log_dir, certs, ("--lifespan", "on"), wait_ready=False)
    code = wait_exit(target, 15)
    target.stop()
    assert code is not None
    assert code != 0
    assert "startup blew up" in target.log()


@pytest.mark.slow
def test_nothing_is_served_before_a_slow_startup_completes(
    kind: str, log_dir: Path, certs: Certificates
) -> None:
    target = start(kind, SLOW, log_dir, certs, wait_ready=False)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with target.http() as client:
                    response = client.get("/state")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert response.json()["keys"] == ["token"]
    finally:
        target.stop()


@pytest.mark.slow
def test_workers_each_run_the_lifespan(kind: str, log_dir: Path, certs: Certificates) -> None:
    target = start(kind, APP, log_dir, certs, ("--workers", "2"))
    try:
        deadline = time.monotonic() + 20
        while target.log().count(STARTED) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(10):
            assert state_keys(target) == ["shared", "token"]
    finally:
        code = target.stop(signal.SIGTERM)
    assert target.log().count(STARTED) == 2
    assert target.log().count(STOPPED) == 2
    assert code in (0, -signal.SIGTERM)
