"""The servers under test, and starting/stopping them (and the load generator) as processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from .peers import SPIKARD_SRC_ENV

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: processes run there so ``python -m benchmarks...`` resolves."""


@dataclass(frozen=True)
class ServerSpec:
    """One echo server: how to start it and what it runs on."""

    name: str
    module: str
    args: tuple[str, ...]
    stack: str
    package: str
    spikard_src: str | None = None
    """If set, the process runs with ``PYTHONPATH=<spikard_src>:<ROOT>``, so ``import spikard``
    finds the package in that ``src`` directory (say a worktree of an older commit) while the
    peer modules still come from this tree; the peer exits unless it really got that one."""
    version: str | None = None
    """Shown by :meth:`label` instead of the installed package's version."""

    def label(self) -> str:
        if self.version:
            return f"{self.name} ({self.package} {self.version})"
        return server_label(self.name, self.package)


SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec(
            "spikard-stream",
            "benchmarks.peers.spikard_stream",
            (),
            "spikard stream handler; asyncio + uvloop (default runner)",
            "spikard",
        ),
        ServerSpec(
            "spikard-callback",
            "benchmarks.peers.spikard_callback",
            (),
            "spikard WebSocketResponse(on_message=...); asyncio + uvloop",
            "spikard",
        ),
        ServerSpec(
            "spikard-trio",
            "benchmarks.peers.spikard_stream",
            ("--backend", "trio"),
            "spikard stream handler on trio",
            "spikard",
        ),
        ServerSpec(
            "websockets",
            "benchmarks.peers.websockets_echo",
            (),
            "python-websockets asyncio server; uvloop",
            "websockets",
        ),
        ServerSpec(
            "uvicorn",
            "benchmarks.peers.uvicorn_starlette",
            (),
            "uvicorn --ws wsproto --http h11 + Starlette; uvloop",
            "uvicorn",
        ),
        ServerSpec(
            "aiohttp",
            "benchmarks.peers.aiohttp_echo",
            (),
            "aiohttp web server (C extensions); uvloop",
            "aiohttp",
        ),
        ServerSpec(
            "picows",
            "benchmarks.peers.picows_echo",
            (),
            "picows (Cython); uvloop",
            "picows",
        ),
        ServerSpec(
            "bare-wsproto",
            "benchmarks.peers.bare_wsproto",
            (),
            "anyio + wsproto loop, no framework; asyncio + uvloop",
            "wsproto",
        ),
    )
}

BASELINE = "spikard-stream"

VERSIONED = (
    "spikard",
    "websockets",
    "uvicorn",
    "starlette",
    "aiohttp",
    "picows",
    "wsproto",
    "h11",
    "anyio",
    "uvloop",
    "trio",
)


def spikard_env(src: str | Path) -> dict[str, str]:
    """The environment of a process that must import spikard from ``src`` (a ``src`` dir)."""
    env = dict(os.environ)
    path = [str(src), str(ROOT)]
    if env.get("PYTHONPATH"):
        path.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(path)
    env[SPIKARD_SRC_ENV] = str(src)
    return env


def check_spikard_import(spec: ServerSpec, timeout: float = 60.0) -> str:
    """Import ``spec``'s peer module the way its server process will; return spikard's path.

    Raises :class:`RuntimeError` (with the child's last lines) when the import fails, say
    because an older spikard lacks a name the peer uses, or when spikard came from anywhere
    but ``spec.spikard_src``.
    """
    code = (
        "import importlib, sys\n"
        "importlib.import_module(sys.argv[1])\n"
        "from benchmarks.peers import check_spikard_source\n"
        "check_spikard_source()\n"
        "import benchmarks, spikard\n"
        "print(spikard.__file__)\n"
        "print(benchmarks.__file__)\n"
    )
    env = spikard_env(spec.spikard_src) if spec.spikard_src else None
    done = subprocess.run(
        [sys.executable, "-c", code, spec.module],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or len(lines) < 2:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"{spec.name}: importing {spec.module} failed: {tail}")
    if Path(lines[-1]).resolve().parent != ROOT / "benchmarks":
        raise RuntimeError(f"{spec.name}: benchmarks imported from {lines[-1]}, not {ROOT}")
    return lines[-2]


DISTRIBUTIONS = {"spikard": "spikard-stream"}
"""Import names whose distribution is named otherwise (``spikard`` on the index is another
project; this one is published as ``spikard-stream``)."""


def package_version(name: str) -> str | None:
    """The installed version of ``name`` (for ``spikard``: its distribution, old or new name)."""
    for distribution in (DISTRIBUTIONS.get(name, name), name):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None


def server_label(name: str, package: str) -> str:
    """``name (package version)``, or just ``name`` when the package is not installed."""
    version = package_version(package)
    return f"{name} ({package} {version})" if version else name


def machine_info() -> dict[str, Any]:
    """CPU count and model, kernel, Python and package versions, date."""
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as file:
        for line in file:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "versions": {name: package_version(name) for name in VERSIONED},
        "spikard_commit": _git("rev-parse", "--short", "HEAD"),
        "spikard_src_modified": _git("status", "--porcelain", "--", "src").splitlines(),
    }


def _git(*args: str) -> str:
    """Output of a git command in the repository, or "" without git."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.rstrip()


def placement_cpus(placement: str) -> tuple[int | None, int | None]:
    """(server CPU, load generator CPU) for ``split``, ``same`` or ``none``.

    ``split`` puts the server on the last CPU this process may use and the load generator on
    the one before; ``same`` puts both on the last. With one CPU, nothing is pinned.
    """
    allowed = sorted(os.sched_getaffinity(0))
    if placement == "none" or len(allowed) < 2:
        return None, None
    if placement == "same":
        return allowed[-1], allowed[-1]
    if placement == "split":
        return allowed[-1], allowed[-2]
    raise ValueError(f"unknown placement {placement!r}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    """Wait until something accepts on ``port``; fail if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on port {port} within {timeout:g} s")


def stop_process(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; always reaps the process."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(5.0)


def log_tail(log: Path, lines: int = 2) -> str:
    """The last non-empty ``lines`` of ``log``, joined by `` | ``."""
    try:
        with open(log, "rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 4096))
            text = file.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return " | ".join([line for line in text.splitlines() if line.strip()][-lines:])


@dataclass
class RunningServer:
    spec: ServerSpec
    port: int
    pid: int
    log: Path


@contextlib.contextmanager
def running_server(
    spec: ServerSpec, *, cpu: int | None = None, log_dir: Path | None = None
) -> Iterator[RunningServer]:
    """Start ``spec`` on a free loopback port (pinned to ``cpu``) and stop it on exit."""
    port = free_port()
    log_dir = log_dir or ROOT / "benchmarks" / "results" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{spec.name}.log"
    command = [sys.executable, "-m", spec.module, "--port", str(port), *spec.args]
    with open(log, "ab") as log_file:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=spikard_env(spec.spikard_src) if spec.spikard_src else None,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        if cpu is not None:
            os.sched_setaffinity(proc.pid, {cpu})
        try:
            wait_listening(proc, port, 30.0)
        except RuntimeError as exc:
            tail = log_tail(log) if proc.poll() is not None else ""
            raise RuntimeError(f"{exc}: {tail}" if tail else str(exc)) from exc
        yield RunningServer(spec, port, proc.pid, log)
    finally:
        stop_process(proc)


class LoadgenError(RuntimeError):
    """The load generator reported an error (bad echo, timeout) or crashed."""


def run_loadgen(
    server: RunningServer,
    workloads: Sequence[str],
    extra: Sequence[str] = (),
    *,
    cpu: int | None = None,
    timeout: float = 300.0,
) -> list[dict[str, Any]]:
    """Run ``python -m benchmarks.loadgen`` against ``server``; return its results."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.loadgen",
        "--port",
        str(server.port),
        "--server-pid",
        str(server.pid),
        "--workload",
        ",".join(workloads),
        *extra,
    ]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LoadgenError(f"load generator timed out after {timeout:g} s") from exc
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        parsed: Any = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and "error" in parsed:
        raise LoadgenError(str(parsed["error"]))
    if done.returncode != 0 or not isinstance(parsed, list):
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        raise LoadgenError(f"load generator exited {done.returncode}: {' | '.join(tail)}")
    return parsed
