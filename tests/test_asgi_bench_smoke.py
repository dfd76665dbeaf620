"""CI smoke run of the ASGI benchmark: quick mode, every workload, a few servers.

The full run is on demand (``python -m benchmarks.asgi_bench``); this keeps it from rotting:
every server starts, serves both apps' routes, and its CPU is measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from benchmarks.asgi_bench import LIMITS, ratio, summarize

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("a", "b", "c", "d", "get")


def _quick(tmp_path: Path, *args: str) -> dict[str, Any]:
    output = tmp_path / "asgi.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.asgi_bench", "--quick", "--output", str(output), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    report["markdown"] = output.with_suffix(".md").read_text(encoding="utf-8")
    return report


def _assert_measured(
    report: dict[str, Any], servers: tuple[str, ...], workloads: tuple[str, ...]
) -> None:
    runs = report["runs"]
    assert sorted(runs) == sorted(workloads)
    for workload in workloads:
        assert sorted(runs[workload]) == sorted(servers)
        for server in servers:
            (result,) = runs[workload][server]
            assert "error" not in result, (workload, server, result)
            assert result["units"] > 0, (workload, server, result)
            assert result["server_cpu_us_per_unit"] > 0, (workload, server, result)
            assert result["client_cpu_us_per_unit"] > 0, (workload, server, result)


def test_quick_run_measures_spikard_uvicorn_and_the_spikard_app(tmp_path: Path) -> None:
    servers = ("spikard", "uvicorn-wsproto", "spikard-app")
    # (b) and (d) open many connections from one address: per-client limits must be off.
    report = _quick(tmp_path, "--servers", ",".join(servers))
    _assert_measured(report, servers, WORKLOADS)
    targets = [r for r in report["ratios"] if r["kind"] == "target"]
    assert sorted(r["workload"] for r in targets) == sorted(WORKLOADS)
    for row in targets:
        assert row["den"] == "uvicorn-wsproto"
        assert row["limit"] == LIMITS[row["workload"]]
        assert row["ratio"] > 0
        assert row["met"] is (row["ratio"] <= row["limit"])
    assert "spikard / uvicorn-wsproto" in report["markdown"]
    overheads = {r["workload"] for r in report["ratios"] if r["num"] == "spikard"}
    assert overheads == set(WORKLOADS)


def test_quick_run_measures_granian_and_the_hosted_spikard_app(tmp_path: Path) -> None:
    pytest.importorskip("granian")
    servers = ("granian", "spikard-app@uvicorn", "uvicorn-sansio")
    report = _quick(tmp_path, "--servers", ",".join(servers), "--workloads", "a,get")
    _assert_measured(report, servers, ("a", "get"))


def test_ratios_pair_rounds_and_skip_errors() -> None:
    def rounds(*costs: float | None) -> list[dict[str, Any]]:
        return [
            {"round": i, "server_cpu_us_per_unit": c} if c else {"round": i, "error": "x"}
            for i, c in enumerate(costs)
        ]

    # Per-round ratios 0.5, 0.25 (round 2 failed on one side): the median is 0.375.
    assert ratio(rounds(10.0, 10.0, 7.0), rounds(20.0, 40.0, None)) == pytest.approx(0.375)
    assert ratio(rounds(None), rounds(1.0)) is None

    report: dict[str, Any] = {
        "runs": {"d": {"spikard": rounds(8.0), "uvicorn-sansio": rounds(9.0)}},
    }
    summarize(report)
    (row,) = report["ratios"]
    assert (row["num"], row["den"], row["limit"], row["met"]) == (
        "spikard",
        "uvicorn-sansio",
        0.8,
        False,
    )
