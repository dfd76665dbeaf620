"""Profile a server under one workload with py-spy and list where its CPU time goes.

::

    python -m benchmarks.hotspots                         # spikard-stream under workload a
    python -m benchmarks.hotspots --server spikard-callback --workload b --duration 8

Starts the server, runs the load generator for the workload, attaches ``py-spy record``
(sampling, raw collapsed stacks) to the server for ``--duration`` seconds once the traffic is
warm, then prints Markdown tables: functions by self time (where the samples landed), by
inclusive time (what was on the stack), and self time by package. The raw stacks are kept in
``benchmarks/results/profile-<server>-<workload>.txt`` for flamegraph tools (speedscope,
flamegraph.pl). Percentages are of samples where the server was running Python code (py-spy
skips idle samples, and so does this summary for samples waiting in ``epoll``), so they add
up to the server's busy time, not to wall time. With ``--native`` (the default) C frames and
system calls show up as leaves (``write``, ``read``, ``getpid``). py-spy stops the process to
sample it, and a thread inside a system call stops at its exit, so frequent cheap syscalls
(``getpid``) collect more samples than their cost: count syscalls with ``strace -c -f -p PID``
to weigh them (``docs/benchmarks.md`` has such counts).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence

from .run import AUTO_PLACEMENT
from .servers import ROOT, SERVERS, placement_cpus, running_server, stop_process

RESULTS = ROOT / "benchmarks" / "results"
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")
# Leaves that mean "waiting for the socket": with --native, py-spy records them as samples.
_IDLE = frozenset({"epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select"})


def _package(file: str) -> str:
    if file.startswith("<"):
        return file
    if ".so" in file or file.endswith((".c", ".h", ".pyx")):
        return f"native: {file}"
    return file.split("/", 1)[0].removesuffix(".py")


def summarize(raw: str, top: int) -> str:
    """Markdown tables of self time, inclusive time and packages from py-spy raw output."""
    self_time: collections.Counter[str] = collections.Counter()
    self_lines: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        if stack.rsplit(";", 1)[-1].split(" (", 1)[0] in _IDLE:
            idle += count
            continue
        total += count
        keys = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame)
            if match is None:
                keys.append((frame, frame, frame))
                continue
            function, file = match["function"], match["file"]
            where = f"{file}:{match['line']}" if match["line"] else file
            keys.append((f"{function} ({file})", f"{function} ({where})", _package(file)))
        leaf_function, leaf_line, leaf_package = keys[-1]
        self_time[leaf_function] += count
        self_lines[leaf_line] += count
        packages[leaf_package] += count
        for function in {k[0] for k in keys}:
            inclusive[function] += count
    if not total:
        return "no samples\n"

    def table(title: str, counter: collections.Counter[str], limit: int) -> list[str]:
        rows = [f"| {title} | % of samples |", "|---|--:|"]
        rows += [f"| `{name}` | {100 * n / total:.1f} |" for name, n in counter.most_common(limit)]
        return rows

    out = [
        f"{total} busy samples ({idle} idle samples, waiting in epoll, left out).",
        "",
        "Self time by function (the leaf of each sample):",
        "",
    ]
    out += table("function (file)", self_time, top)
    out += ["", "Self time by line:", ""]
    out += table("function (file:line)", self_lines, top)
    out += ["", "Inclusive time (on the stack), spikard frames:", ""]
    spikard = collections.Counter(
        {k: v for k, v in inclusive.items() if "(spikard/" in k or "(benchmarks/" in k}
    )
    out += table("function (file)", spikard, top)
    out += ["", "Self time by package:", ""]
    out += table("package", packages, 12)
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="py-spy profile of a server under load.")
    parser.add_argument("--server", default="spikard-stream", choices=list(SERVERS))
    parser.add_argument("--workload", default="a", choices=sorted(AUTO_PLACEMENT))
    parser.add_argument("--duration", type=float, default=6.0, help="seconds sampled")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument(
        "--no-native",
        action="store_true",
        help="Python frames only (by default C frames and syscalls are sampled too)",
    )
    parser.add_argument(
        "--placement",
        choices=("split", "same", "none"),
        default="split",
        help="split (default): on one shared CPU, py-spy counts the server as busy while the "
        "load generator preempts it in a send, inflating the send line",
    )
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        parser.error('py-spy is not installed: pip install -e ".[bench]"')
    if args.workload == "e":
        parser.error("workload e is a memory measurement; profile a, b, c, d or f")

    raw_path = RESULTS / f"profile-{args.server}-{args.workload}.txt"
    RESULTS.mkdir(parents=True, exist_ok=True)
    server_cpu, client_cpu = placement_cpus(args.placement)
    warmup = 1.0
    with running_server(SERVERS[args.server], cpu=server_cpu) as server:
        loadgen_command = [
            sys.executable,
            "-m",
            "benchmarks.loadgen",
            "--port",
            str(server.port),
            "--workload",
            args.workload,
            "--warmup",
            "0.2",
            "--duration",
            str(args.duration + warmup + 1.0),
        ]
        if client_cpu is not None:
            loadgen_command += ["--cpu", str(client_cpu)]
        loadgen = subprocess.Popen(loadgen_command, cwd=ROOT, stdout=subprocess.DEVNULL)
        try:
            time.sleep(warmup)
            record = [
                py_spy,
                "record",
                "--pid",
                str(server.pid),
                "--duration",
                str(round(args.duration)),
                "--rate",
                str(args.rate),
                *(() if args.no_native else ("--native",)),
                "--format",
                "raw",
                "--output",
                str(raw_path),
            ]
            subprocess.run(record, check=True, capture_output=True, timeout=args.duration + 30)
            loadgen.wait(timeout=args.duration + 60)
        finally:
            stop_process(loadgen)
    print(f"py-spy profile of {args.server} under workload {args.workload} ({raw_path}):\n")
    print(summarize(raw_path.read_text(encoding="utf-8"), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
