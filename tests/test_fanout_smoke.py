"""CI smoke run of the fan-out benchmark: ``--quick`` (200 sockets, spikard, in-memory broker).

The full run (1,000 and 10,000 sockets, Redis, the peers) is on demand:
``python -m benchmarks.fanout``. This only keeps it from rotting.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_quick_fanout_delivers_every_message(tmp_path: Path) -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("the fan-out benchmark reads CPU times from /proc (Linux only)")
    if not (ROOT / "benchmarks" / "fanout.py").exists():
        pytest.skip("benchmarks/ is not in this checkout")
    output = tmp_path / "fanout.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.fanout", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=40,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    (result,) = report["results"]
    assert "error" not in result, result
    assert (result["server"], result["mode"], result["connections"]) == ("spikard", "memory", 200)
    # Every socket received every measured message exactly once (the clients check the order).
    assert result["deliveries"] == 200 * result["rounds"] > 0
    assert result["sockets_per_worker"] == [200]
    # A delivery time is at most the time its round took to reach the last socket.
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= max(result["round_last_ms"]) + 0.01
    assert result["msgs_per_s"] > 0
    assert result["server_cpu_s"] >= 0
    assert result["client_cpu_s"] >= 0
    assert "spikard" in output.with_suffix(".md").read_text(encoding="utf-8")
