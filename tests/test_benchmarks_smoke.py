"""CI smoke run of the benchmark suite: quick mode, spikard's stream handler, every workload.

The full run is on demand (``python -m benchmarks.run``); this only keeps it from rotting.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("a", "b", "c", "d", "e", "f")


def test_quick_run_measures_every_workload(tmp_path: Path) -> None:
    output = tmp_path / "quick.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    runs = report["runs"]
    assert sorted(runs) == list(WORKLOADS)
    for workload in WORKLOADS:
        (result,) = runs[workload]["spikard-stream"]
        assert "error" not in result, (workload, result)
        assert result["units"] > 0, (workload, result)
        assert result["throughput"] > 0, (workload, result)
        assert result["server_cpu_us_per_unit"] > 0, (workload, result)
        assert result["client_cpu_us_per_unit"] > 0, (workload, result)
        assert result["verified"] >= result["units"], (workload, result)
    for workload in ("a", "b", "c", "f"):
        result = runs[workload]["spikard-stream"][0]
        assert result["p50_us"] > 0, (workload, result)
        assert result["p99_us"] >= result["p50_us"], (workload, result)
    assert runs["c"]["spikard-stream"][0]["mb_per_s"] > 0
    assert runs["e"]["spikard-stream"][0]["kib_per_conn"] > 0
    assert "spikard-stream" in output.with_suffix(".md").read_text(encoding="utf-8")
