"""Run the benchmark suite: every server, every workload, interleaved rounds, medians, ratios.

::

    python -m benchmarks.run                      # full run (about 12 minutes)
    python -m benchmarks.run --quick              # about a second per workload, spikard only
    python -m benchmarks.run --servers spikard-stream,websockets --workloads a,c --rounds 5
    python -m benchmarks.run --before <rev> --rounds 5   # this tree against commit <rev>

For each workload, each round starts every server once (a fresh process per measurement, in
an order rotated every round), runs the load generator against it in a separate process,
and stops it. Medians over rounds are reported, and ratios against ``spikard-stream`` are the
median of the per-round ratios, so drifting machine noise cancels. Results go to
``benchmarks/results/latest.json`` and a Markdown report to ``latest.md``.

``--before REV`` (a commit, tag or any git revision) checks REV out once into a detached git
worktree under a temporary directory (removed at the end, also on Ctrl-C, SIGTERM or an
error) and adds a ``NAME@before`` twin of each selected spikard server (``spikard-stream``,
``spikard-callback``, ``spikard-trio``; without ``--servers``, the default set includes
both of the first two): the same peer module from this tree, started with
``PYTHONPATH=<worktree>/src:<repo root>`` so that ``import spikard`` gets REV's code. The
spikard servers of this tree then run with ``PYTHONPATH=<repo root>/src:<repo root>``, so
"after" is this tree's ``src`` whatever is installed. Each such process checks where spikard
came from (``$BENCH_SPIKARD_SRC``) and exits before listening if it is the wrong one, and
every peer module is imported that way once before measuring, failing the run up front. A
twin runs right next to its counterpart in every round (which one goes first alternates), so
the two share the machine's noise. The report adds a before/after table, the cost of each
spikard server over its twin (median of per-round ratios; above 1.10 is flagged), and the
value of every target for the ``@before`` servers; the JSON records REV and its full commit
hash under ``config.before``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .servers import (
    BASELINE,
    ROOT,
    SERVERS,
    LoadgenError,
    ServerSpec,
    check_spikard_import,
    machine_info,
    placement_cpus,
    run_loadgen,
    running_server,
)

RESULTS = ROOT / "benchmarks" / "results"
WORKLOAD_NAMES = ("a", "b", "c", "d", "e", "f")

# The cost each workload is judged by: server CPU per unit, or KiB per idle connection.
COST = dict.fromkeys(WORKLOAD_NAMES, "server_cpu_us_per_unit")
COST["e"] = "kib_per_conn"

# (workload, peer, most spikard-stream may cost relative to the peer)
TARGETS: list[tuple[str, str, float]] = [
    ("a", "websockets", 1.0),
    ("b", "websockets", 1.0),
    ("c", "websockets", 1.25),
    ("d", "websockets", 1.0),
    ("a", "uvicorn", 2 / 3),
    ("b", "uvicorn", 2 / 3),
    ("c", "uvicorn", 2 / 3),
    ("d", "uvicorn", 2 / 3),
]
RSS_TARGET_KIB = 15.0
SHIM_TOLERANCE = 1.10

BEFORE = "@before"
"""Suffix of the servers running the ``--before`` revision's spikard."""
SPIKARD_SERVERS = ("spikard-stream", "spikard-callback", "spikard-trio")
"""The servers ``--before`` adds a twin of (when selected)."""
SLOWDOWN_LIMIT = 1.10
"""Most a spikard server may cost relative to its ``@before`` twin before it is flagged."""

PLACEMENT_NAMES = ("auto", "split", "same", "none")
# auto: ping-pong workloads (one side runs at a time) share a core, so no message pays a
# cross-core wakeup; workloads that keep the server busy give it a core of its own.
AUTO_PLACEMENT = {"a": "same", "b": "split", "c": "same", "d": "split", "e": "split", "f": "split"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- measuring ---------------------------------------------------------------------------------


def cpus(placement: str, workload: str) -> tuple[int | None, int | None]:
    """(server CPU, load generator CPU) for ``workload`` under ``placement``."""
    return placement_cpus(
        AUTO_PLACEMENT.get(workload, "split") if placement == "auto" else placement
    )


@dataclasses.dataclass(frozen=True)
class Before:
    """The ``--before`` revision, checked out in a worktree for the run."""

    rev: str
    commit: str
    subject: str
    src: Path

    def record(self) -> dict[str, str]:
        return {"rev": self.rev, "commit": self.commit, "subject": self.subject}


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=120, check=False
    )


@contextlib.contextmanager
def before_worktree(rev: str) -> Iterator[Before]:
    """Check ``rev`` out into a detached worktree under a temporary directory; remove it after.

    Raises :class:`SystemExit` when ``rev`` is no commit or has no ``src/spikard``.
    """
    resolved = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    commit = resolved.stdout.strip()
    if resolved.returncode != 0 or not commit:
        raise SystemExit(f"--before: {rev!r} is not a commit of {ROOT}")
    subject = _git("log", "-1", "--format=%s", commit).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="spikard-before-"))
    tree = tmp / "spikard"
    try:
        added = _git("worktree", "add", "--detach", str(tree), commit)
        if added.returncode != 0:
            raise SystemExit(f"--before: git worktree add failed: {added.stderr.strip()}")
        log(f"--before {rev}: {commit[:12]} {subject!r} checked out in {tree}")
        if not (tree / "src" / "spikard" / "__init__.py").is_file():
            raise SystemExit(f"--before: {rev} ({commit[:12]}) has no src/spikard/__init__.py")
        yield Before(rev, commit, subject, tree / "src")
    finally:
        if tree.exists():
            removed = _git("worktree", "remove", "--force", str(tree))
            if removed.returncode != 0:
                log(f"--before: git worktree remove failed: {removed.stderr.strip()}")
        shutil.rmtree(tmp, ignore_errors=True)
        _git("worktree", "prune")
        if tree.exists():
            log(f"--before: could not remove {tree}")
        else:
            log(f"--before: removed the worktree {tree}")


def server_groups(names: Sequence[str], before: Before | None) -> list[list[ServerSpec]]:
    """The servers to run, each with its ``@before`` twin (if any) in the same group.

    With ``before``, this tree's spikard servers import spikard from ``ROOT/src`` explicitly,
    so both sides of the comparison are pinned to a known source.
    """
    groups = []
    for name in names:
        spec = SERVERS[name]
        if before is None or name not in SPIKARD_SERVERS:
            groups.append([spec])
            continue
        after = dataclasses.replace(spec, spikard_src=str(ROOT / "src"))
        twin = dataclasses.replace(
            spec,
            name=name + BEFORE,
            stack=f"{spec.stack}; spikard at {before.rev} = {before.commit[:12]}",
            spikard_src=str(before.src),
            version=f"at {before.commit[:12]}",
        )
        groups.append([after, twin])
    return groups


def check_imports(groups: Sequence[Sequence[ServerSpec]]) -> None:
    """Import every peer module that runs a chosen spikard; SystemExit when one fails."""
    for group in groups:
        for spec in group:
            if spec.spikard_src is None:
                continue
            try:
                where = check_spikard_import(spec)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                raise SystemExit(f"--before: {exc}") from exc
            log(f"{spec.name}: {spec.module} imports spikard from {Path(where).parent}")


def measure(
    spec: ServerSpec, workloads: Sequence[str], loadgen_args: Sequence[str], placement: str
) -> list[dict[str, Any]]:
    """Start ``spec``, run the load generator for ``workloads``, stop it; errors are results."""
    server_cpu, client_cpu = cpus(placement, workloads[0])
    try:
        with running_server(spec, cpu=server_cpu) as server:
            return run_loadgen(server, workloads, loadgen_args, cpu=client_cpu)
    except (LoadgenError, RuntimeError, OSError) as exc:
        return [{"workload": w, "error": str(exc)} for w in workloads]


def _brief(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"ERROR {result['error']}"
    parts = []
    if result.get("server_cpu_us_per_unit") is not None:
        parts.append(f"{result['server_cpu_us_per_unit']:.1f} us/{result['unit']}")
    parts.append(f"{result['throughput']:,.0f} {result['unit']}s/s")
    if "kib_per_conn" in result:
        parts.append(f"{result['kib_per_conn']:.1f} KiB/conn")
    if "p99_us" in result:
        parts.append(f"p99 {result['p99_us']:,.0f} us")
    parts.append(f"client cpu {result['client_cpu_util']:.0%}")
    return ", ".join(parts)


def run_suite(args: argparse.Namespace, before: Before | None = None) -> dict[str, Any]:
    groups = server_groups(args.servers, before)
    servers = [spec for group in groups for spec in group]
    loadgen_args: list[str] = ["--quick"] if args.quick else []
    if args.duration is not None and not args.quick:
        loadgen_args += ["--duration", str(args.duration)]
    if args.warmup is not None:
        loadgen_args += ["--warmup", str(args.warmup)]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        w: {s.name: [] for s in servers} for w in args.workloads
    }
    machine = machine_info()  # before the run: its date and the code measured
    started = time.monotonic()
    if args.quick:
        # One server process per server runs every workload: seconds, for CI.
        for spec in servers:
            for result in measure(spec, args.workloads, loadgen_args, args.placement):
                result["round"] = 0
                runs[result["workload"]][spec.name].append(result)
                log(f"[{result['workload']}] {spec.name}: {_brief(result)}")
    else:
        for workload in args.workloads:
            rounds = args.rss_rounds if workload == "e" else args.rounds
            for round_index in range(rounds):
                # Rotate the groups; a server and its @before twin stay next to each other,
                # the one going first alternating from round to round.
                shift = round_index % len(groups)
                order = [
                    spec
                    for group in groups[shift:] + groups[:shift]
                    for spec in (group if round_index % 2 == 0 else group[::-1])
                ]
                for spec in order:
                    (result,) = measure(spec, [workload], loadgen_args, args.placement)
                    result["round"] = round_index
                    runs[workload][spec.name].append(result)
                    elapsed = time.monotonic() - started
                    log(
                        f"[{workload} {round_index + 1}/{rounds} {elapsed:4.0f}s] "
                        f"{spec.name}: {_brief(result)}"
                    )
    config: dict[str, Any] = {
        "servers": {s.name: s.stack for s in servers},
        "workloads": list(args.workloads),
        "rounds": args.rounds,
        "rss_rounds": args.rss_rounds,
        "quick": args.quick,
        "placement": args.placement,
        "loadgen_args": loadgen_args,
        "seconds": round(time.monotonic() - started, 1),
    }
    if before is not None:
        config["before"] = before.record()
    return {"machine": machine, "config": config, "runs": runs}


# ---- summarizing -------------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else None


def _good(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rounds if "error" not in r]


def summarize(report: dict[str, Any]) -> None:
    """Add medians, per-round ratios against the baseline, and the targets to ``report``."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = report["runs"]
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for workload, by_server in runs.items():
        summary[workload] = {}
        for server, rounds in by_server.items():
            good = _good(rounds)
            keys = sorted({k for r in good for k, v in r.items() if isinstance(v, (int, float))})
            medians: dict[str, Any] = {
                k: _median([r.get(k) for r in good]) for k in keys if k != "round"
            }
            medians["rounds"] = len(good)
            medians["errors"] = [r["error"] for r in rounds if "error" in r]
            summary[workload][server] = medians
    report["summary"] = summary

    ratios: dict[str, dict[str, float | None]] = {}
    for workload, by_server in runs.items():
        ratios[workload] = {
            server: ratio(runs, workload, BASELINE, server)
            for server in by_server
            if server != BASELINE
        }
    report["ratios"] = ratios
    before_after: dict[str, dict[str, float | None]] = {}
    for workload, by_server in runs.items():
        before_after[workload] = {
            server: ratio(runs, workload, server, server + BEFORE)
            for server in by_server
            if server + BEFORE in by_server
        }
    if any(before_after.values()):
        report["before_after"] = before_after
    else:
        report.pop("before_after", None)
    report["targets"] = targets(report)


def ratio(
    runs: dict[str, dict[str, list[dict[str, Any]]]], workload: str, num: str, den: str
) -> float | None:
    """Median over rounds of cost(``num``) / cost(``den``), each within one round."""
    key = COST[workload]
    by_server = runs.get(workload, {})
    dens = {r["round"]: r.get(key) for r in _good(by_server.get(den, []))}
    per_round = [
        r[key] / dens[r["round"]]
        for r in _good(by_server.get(num, []))
        if r.get(key) and dens.get(r["round"])
    ]
    return _median(per_round)


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target, measured for spikard-stream and, with ``--before``, for its twin.

    With a twin, ``before`` is the same target's value for the ``@before`` servers and
    ``verdict`` says whether the target holds, or else is no worse than before (within
    :data:`SLOWDOWN_LIMIT`), or is worse.
    """
    runs = report["runs"]
    summary = report["summary"]
    stream, callback = BASELINE, "spikard-callback"
    has_before = any(stream + BEFORE in by_server for by_server in runs.values())
    checks: list[dict[str, Any]] = []

    def add(
        target: str, limit: float, now: float | None, then: float | None, low: float | None
    ) -> None:
        def met(value: float | None) -> bool | None:
            return None if value is None else (low is None or low <= value) and value <= limit

        check: dict[str, Any] = {"target": target, "measured": now, "limit": limit}
        check["met"] = met(now)
        if has_before:
            check["before"] = then
            check["before_met"] = met(then)
            if now is None:
                verdict = None
            elif check["met"]:
                verdict = "holds"
            elif then is None:
                verdict = "missed"
            elif _excess(now, low, limit) <= _excess(then, low, limit) * SLOWDOWN_LIMIT:
                verdict = "no worse than before"
            else:
                verdict = "worse than before"
            check["verdict"] = verdict
        checks.append(check)

    for workload, peer, limit in TARGETS:
        add(
            f"({workload}) spikard-stream CPU <= {limit:.3g} x {peer}",
            limit,
            ratio(runs, workload, stream, peer),
            ratio(runs, workload, stream + BEFORE, peer),
            None,
        )
    rss = summary.get("e", {}).get(stream, {})
    rss_before = summary.get("e", {}).get(stream + BEFORE, {})
    counts = sorted(int(k.rsplit("_", 1)[1]) for k in rss if k.startswith("kib_per_conn_"))
    for count in counts:
        add(
            f"(e) spikard-stream RSS per idle conn at {count:,} <= {RSS_TARGET_KIB:g} KiB",
            RSS_TARGET_KIB,
            rss.get(f"kib_per_conn_{count}"),
            rss_before.get(f"kib_per_conn_{count}"),
            None,
        )
    for workload in ("a", "b", "c", "d"):
        stream_over_shim = ratio(runs, workload, stream, callback)
        then_over_shim = ratio(runs, workload, stream + BEFORE, callback + BEFORE)
        add(
            f"({workload}) callback shim CPU / stream within "
            f"{1 / SHIM_TOLERANCE:.2f}..{SHIM_TOLERANCE:g}",
            SHIM_TOLERANCE,
            None if not stream_over_shim else 1 / stream_over_shim,
            None if not then_over_shim else 1 / then_over_shim,
            1 / SHIM_TOLERANCE,
        )
    return checks


def _excess(value: float, low: float | None, limit: float) -> float:
    """How far ``value`` lies outside ``low..limit``, as a factor: 1 inside it."""
    below = low / value if low is not None and value > 0 else 1.0
    return max(value / limit, below, 1.0)


# ---- Markdown ------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> list[str]:
    aligns = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" if a == "l" else "--:" for a in aligns) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _label(server: str, config: dict[str, Any]) -> str:
    before = config.get("before")
    if server.endswith(BEFORE) and before:
        return f"{server} (spikard at {before['commit'][:12]})"
    return SERVERS[server].label() if server in SERVERS else server


def _flag(value: float | None, limit: float) -> str:
    text = _fmt(value, 2)
    return f"**{text}** (> {limit:.2f})" if value is not None and value > limit else text


def render(report: dict[str, Any]) -> str:
    summary: dict[str, dict[str, dict[str, Any]]] = report["summary"]
    machine = report["machine"]
    config = report["config"]
    before = config.get("before")
    servers = list(config["servers"])
    workloads = [w for w in WORKLOAD_NAMES if w in summary]

    def get(workload: str, server: str, key: str) -> float | None:
        value = summary.get(workload, {}).get(server, {}).get(key)
        return value if isinstance(value, (int, float)) else None

    rss_counts = sorted(
        {
            int(k.rsplit("_", 1)[1])
            for s in summary.get("e", {}).values()
            for k in s
            if k.startswith("kib_per_conn_")
        }
    )
    out = [
        f"Run of {machine['date']}: {machine['nproc']} x {machine['cpu_model']}, "
        f"Linux {machine['kernel']}, Python {machine['python']}; spikard at "
        f"{machine.get('spikard_commit') or '?'}"
        f"{' + uncommitted src changes' if machine.get('spikard_src_modified') else ''}; "
        + (f"@before: spikard at {before['rev']} = {before['commit'][:12]}; " if before else "")
        + f"rounds {config['rounds']} (RSS {config['rss_rounds']}), "
        f"load generator {' '.join(config['loadgen_args']) or 'defaults'}, "
        f"placement {config['placement']}"
        f"{', quick' if config['quick'] else ''}; {config['seconds']:.0f} s.",
        "",
        "Server CPU time per unit of work (median over rounds; lower is better):",
        "",
    ]
    header = ["server"]
    columns: list[tuple[str, str, int]] = []
    labels = {
        "a": "(a) 1 conn ping-pong 32 B: us/msg",
        "b": "(b) 64x16 in flight 32 B: us/msg",
        "c": "(c) 64 KiB ping-pong: us/msg",
        "d": "(d) connect+echo+close: us/conn",
        "f": "(f) 1,000 busy + probe: us/msg",
    }
    for w in ("a", "b", "c", "d"):
        if w in workloads:
            header.append(labels[w])
            columns.append((w, "server_cpu_us_per_unit", 1))
    for count in rss_counts:
        header.append(f"(e) RSS/idle conn @{count:,}: KiB")
        columns.append(("e", f"kib_per_conn_{count}", 1))
    if "f" in workloads:
        header.append(labels["f"])
        columns.append(("f", "server_cpu_us_per_unit", 1))
    rows = [
        [_label(s, config)] + [_fmt(get(w, s, key), d) for w, key, d in columns] for s in servers
    ]
    out += _table(header, rows)

    out += ["", "Throughput and latency (median over rounds):", ""]
    header = ["server"]
    columns = []
    spec = [
        ("a", "throughput", "(a) msgs/s"),
        ("a", "p50_us", "(a) p50 us"),
        ("a", "p99_us", "(a) p99 us"),
        ("b", "throughput", "(b) msgs/s"),
        ("c", "mb_per_s", "(c) MB/s"),
        ("d", "throughput", "(d) conns/s"),
        ("e", "throughput", "(e) conns/s opened"),
        ("f", "throughput", "(f) msgs/s, all"),
        ("f", "p50_us", "(f) probe p50 us"),
        ("f", "p99_us", "(f) probe p99 us"),
    ]
    for w, key, title in spec:
        if w in workloads:
            header.append(title)
            columns.append((w, key, 0 if key != "mb_per_s" else 1))
    rows = [[s] + [_fmt(get(w, s, key), d) for w, key, d in columns] for s in servers]
    out += _table(header, rows)

    ratios = report["ratios"]
    peers = [s for s in servers if s != BASELINE]
    if BASELINE in servers and peers:
        out += [
            "",
            f"Ratios {BASELINE} / peer, median of per-round ratios (server CPU per unit; "
            "RSS per connection for e). Above 1: spikard costs more than the peer.",
            "",
        ]
        header = ["peer"] + [f"({w})" for w in workloads]
        rows = [[p] + [_fmt(ratios[w].get(p), 2) for w in workloads] for p in peers]
        out += _table(header, rows)

    before_after: dict[str, dict[str, float | None]] = report.get("before_after") or {}
    pairs = [s for s in servers if s + BEFORE in servers]
    if before_after and pairs:
        where = f"spikard at {before['rev']} = {before['commit'][:12]}" if before else "@before"
        out += [
            "",
            f"Before/after: cost of each spikard server over its @before twin ({where}), "
            "median of per-round ratios (server CPU per unit; RSS per connection for e). "
            f"Above 1: the new code costs more; above {SLOWDOWN_LIMIT:.2f} is flagged.",
            "",
        ]
        header = ["workload"] + [f"{s} / @before" for s in pairs]
        rows = [
            [f"({w})"] + [_flag(before_after.get(w, {}).get(s), SLOWDOWN_LIMIT) for s in pairs]
            for w in workloads
        ]
        out += _table(header, rows)
        slower = [
            f"({w}) {s} {value:.2f}"
            for w in workloads
            for s in pairs
            if (value := before_after.get(w, {}).get(s)) is not None and value > SLOWDOWN_LIMIT
        ]
        missing = [
            f"({w}) {s}" for w in workloads for s in pairs if before_after.get(w, {}).get(s) is None
        ]
        out += [
            "",
            f"More than {SLOWDOWN_LIMIT - 1:.0%} slower than before: "
            + (", ".join(slower) if slower else "none")
            + (f"; not measured: {', '.join(missing)}" if missing else "")
            + ".",
        ]

    if report.get("targets") and BASELINE in servers:
        status = {True: "met", False: "**missed**", None: "not measured"}
        with_before = any("before" in check for check in report["targets"])
        out += ["", "Targets (issue 4):", ""]
        if with_before:
            out += [
                "(`before`: the same target for the @before servers; `verdict`: holds, or "
                f"else no worse than before within {SLOWDOWN_LIMIT - 1:.0%}, or worse.)",
                "",
            ]
        rows = []
        for check in report["targets"]:
            row = [check["target"], _fmt(check["measured"], 2), status[check["met"]]]
            if with_before:
                verdict = check.get("verdict") or "-"
                if verdict == "worse than before":
                    verdict = "**worse than before**"
                row += [_fmt(check.get("before"), 2), status[check.get("before_met")], verdict]
            rows.append(row)
        if with_before:
            header = ["target", "measured", "status", "before", "before status", "verdict"]
            out += _table(header, rows, "lrlrll")
        else:
            out += _table(["target", "measured", "status"], rows, "lrl")

    out += [
        "",
        "Load generator CPU (median over rounds): its CPU per unit and as a share of the "
        f"server's, for {BASELINE} and for the server where the share was highest:",
        "",
    ]
    rows = []
    for w in workloads:
        shares = {s: get(w, s, "client_to_server_cpu") for s in servers}
        known = {s: v for s, v in shares.items() if v is not None}
        worst = max(known, key=lambda s: known[s]) if known else None
        rows.append(
            [
                f"({w})",
                _fmt(get(w, BASELINE, "client_cpu_us_per_unit")),
                _fmt(shares.get(BASELINE), 2),
                f"{_fmt(known[worst], 2)} ({worst})" if worst else "-",
                _fmt(get(w, worst, "client_cpu_util"), 2) if worst else "-",
            ]
        )
    out += _table(
        [
            "workload",
            f"client us/unit, {BASELINE}",
            f"client/server CPU, {BASELINE}",
            "highest client/server CPU",
            "its client CPU, cores",
        ],
        rows,
    )

    errors = [
        f"- ({w}) {s}: {e}"
        for w, by_server in summary.items()
        for s, m in by_server.items()
        for e in m.get("errors", [])
    ]
    if errors:
        out += ["", "Errors:", "", *errors]
    return "\n".join(out) + "\n"


# ---- command line ------------------------------------------------------------------------------


def _names(valid: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in valid]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {list(valid)}")
        return names

    return parse


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run spikard's WebSocket benchmark suite against its peers."
    )
    parser.add_argument("--servers", type=_names(list(SERVERS)), help="comma-separated")
    parser.add_argument("--workloads", type=_names(WORKLOAD_NAMES), default=list(WORKLOAD_NAMES))
    parser.add_argument("--rounds", type=int, default=5, help="rounds per workload (5)")
    parser.add_argument("--rss-rounds", type=int, default=1, help="rounds of workload e (1)")
    parser.add_argument("--quick", action="store_true", help="~1 s per workload, spikard only")
    parser.add_argument(
        "--duration", type=float, default=1.5, help="timed window per measurement, s (1.5)"
    )
    parser.add_argument("--warmup", type=float, help="untimed traffic before it, s")
    parser.add_argument(
        "--placement",
        choices=PLACEMENT_NAMES,
        default="auto",
        help="CPU pinning: split (server on CPU 1, load generator on 0), same (both on 1), "
        "none, or auto (same for ping-pong workloads, split for the others)",
    )
    parser.add_argument(
        "--before",
        metavar="REV",
        help="also run the spikard servers at git revision REV (from a temporary worktree) "
        "as NAME@before, interleaved in the same rounds, and report new/before ratios",
    )
    parser.add_argument("--output", type=Path, help="JSON file (results/latest.json)")
    parser.add_argument("--baseline", action="store_true", help="also keep a dated copy")
    parser.add_argument("--plots", action="store_true", help="then run benchmarks.plots")
    parser.add_argument(
        "--from-json", type=Path, help="print the tables of a saved run, measure nothing"
    )
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text(encoding="utf-8"))
        summarize(saved)
        print(render(saved))
        return 0
    if args.servers is None:
        args.servers = [BASELINE] if args.quick else list(SERVERS)
        if args.before and "spikard-callback" not in args.servers:
            args.servers.append("spikard-callback")
    if args.before and not set(args.servers) & set(SPIKARD_SERVERS):
        parser.error(f"--before needs one of {', '.join(SPIKARD_SERVERS)} among --servers")
    if args.quick:
        args.rounds = args.rss_rounds = 1
        if args.placement == "auto":
            args.placement = "none"  # one server process runs every workload
    if args.rounds < 1 or args.rss_rounds < 1:
        parser.error("--rounds and --rss-rounds must be at least 1")

    from .loadgen import raise_nofile_limit

    raise_nofile_limit()  # inherited by the servers: workload e opens 10,000 connections
    # SIGTERM unwinds like Ctrl-C, so the running server is stopped and the worktree removed.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        with contextlib.ExitStack() as stack:
            before = stack.enter_context(before_worktree(args.before)) if args.before else None
            if before is not None:
                check_imports(server_groups(args.servers, before))
            report = run_suite(args, before)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    summarize(report)
    text = render(report)
    output = args.output or RESULTS / "latest.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    output.with_suffix(".md").write_text(text, encoding="utf-8")
    if args.baseline:
        dated = RESULTS / f"baseline-{time.strftime('%Y-%m-%d')}.json"
        dated.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(text)
    log(f"wrote {output} and {output.with_suffix('.md')}")
    if args.plots:
        from .plots import main as plots_main

        plots_main([])
    failed = any(m["errors"] for by in report["summary"].values() for m in by.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
