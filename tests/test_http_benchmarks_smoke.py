"""The HTTP benchmark runs end to end (one short round, spikard only) and reports its shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_http_bench_quick_run_reports_server_cpu_per_request(tmp_path: Path) -> None:
    output = tmp_path / "http.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.http_bench", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(output.read_text())
    (result,) = report["runs"]["spikard"]
    assert result["requests"] > 0
    assert result["server_cpu_us_per_request"] > 0
    assert result["p99_us"] >= result["p50_us"] > 0
    assert "| spikard (spikard" in completed.stdout


def test_http_transfer_streams_both_ways_with_flat_memory(tmp_path: Path) -> None:
    output = tmp_path / "transfer.json"
    completed = subprocess.run(
        [
            sys.executable, "-m", "benchmarks.http_transfer",
            "--servers", "spikard", "--mib", "32", "--output", str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    results = json.loads(output.read_text())["results"]["spikard"]
    for direction in ("download", "upload"):
        result = results[direction]
        assert result["mib_per_s"] > 0
        # 32 MiB went through; the server grew by far less than that.
        assert result["rss_peak_kib"] - result["rss_before_kib"] < 16 * 1024


def test_sse_fanout_delivers_every_event(tmp_path: Path) -> None:
    output = tmp_path / "sse.json"
    completed = subprocess.run(
        [
            sys.executable, "-m", "benchmarks.sse_fanout", "--servers", "spikard,spikard-generator",
            "--clients", "20", "--events", "2", "--interval", "0.1", "--timeout", "20",
            "--output", str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    runs = json.loads(output.read_text())["runs"]
    for name in ("spikard", "spikard-generator"):
        (result,) = runs[name]["20"]
        assert (result["connected"], result["deliveries"], result["missing"]) == (20, 40, 0)
        assert result["p99_ms"] >= result["p50_ms"] > 0
