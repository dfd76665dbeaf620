"""Autobahn|Testsuite, quick groups (1-7, 10), against examples/echo.py.

The suite is Python 2 only; the runner in ``../shared/conformance`` builds its own virtualenv
(about a minute, once). Skipped with the reason when the runner or Python 2.7 is missing.
The full runs (9.* limits, 12.*/13.* permessage-deflate) take minutes: see
``scripts/conformance.sh full`` and ``docs/conformance/``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNNER = Path(os.environ.get("CONFORMANCE_DIR", ROOT.parent / "shared" / "conformance")) / "run.sh"

pytestmark = pytest.mark.conformance


def python27_available() -> bool:
    if os.environ.get("PY27") or os.path.exists(os.environ.get("WSTEST", "/tmp/abvenv/bin/wstest")):
        return True
    if shutil.which("python2.7"):
        return True
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    return any(pyenv_root.glob("versions/2.7*/bin/python"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def echo_server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "echo.py"),
            "--port",
            str(port),
            "--max-message-size",
            str(16 * 1024 * 1024),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("examples/echo.py did not start")
                time.sleep(0.1)
        yield f"ws://127.0.0.1:{port}/"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.skipif(not RUNNER.exists(), reason=f"no Autobahn runner at {RUNNER}")
@pytest.mark.skipif(not python27_available(), reason="Autobahn|Testsuite needs Python 2.7")
@pytest.mark.timeout(600)
def test_autobahn_quick_groups_all_ok(echo_server: str, tmp_path: Path) -> None:
    completed = subprocess.run(
        ["bash", str(RUNNER), "-q", "-o", str(tmp_path), echo_server],
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    output = completed.stdout + completed.stderr
    if completed.returncode == 2 and not (tmp_path / "index.json").exists():
        pytest.skip(f"the Autobahn suite could not be installed or run:\n{output[-2000:]}")
    assert completed.returncode == 0, output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["cases"] == summary["expected"] == 247
    for group, counts in summary["groups"].items():
        not_ok = {
            k: v for k, v in counts.items() if k not in ("OK", "INFORMATIONAL", "total", "secs")
        }
        assert not not_ok, f"group {group}: {counts}"
    informational = sum(counts.get("INFORMATIONAL", 0) for counts in summary["groups"].values())
    assert informational == 3  # 7.1.6, 7.13.1 and 7.13.2 are informational for every server
