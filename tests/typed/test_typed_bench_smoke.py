"""Smoke run of ``benchmarks/typed_bench.py``: one family, quick, every echo verified."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_compares_the_typed_handler_with_decoding_by_hand(tmp_path: Path) -> None:
    output = tmp_path / "typed.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.typed_bench",
            "--quick",
            "--families",
            "union",
            "--sizes",
            "200B",
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    [row] = report["rows"]
    assert (row["family"], row["size"], row["bytes"]) == ("union", "200B", 200)
    for handler in ("manual", "typed"):
        [result] = row["samples"][handler]
        assert result["units"] > 0
        assert result["verified"] >= result["units"]  # each echo was the message sent
        assert result["server_cpu_us_per_unit"] > 0
    assert row["b_over_a"] > 0
    assert "| union" in done.stderr


def test_quick_in_process_run(tmp_path: Path) -> None:
    output = tmp_path / "in_process.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.typed_bench",
            "--quick",
            "--in-process",
            "--families",
            "struct",
            "typeddict",
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(output.read_text(encoding="utf-8"))["rows"]
    assert [(r["family"], r["size"]) for r in rows] == [
        ("struct", "200B"),
        ("struct", "10KiB"),
        ("typeddict", "200B"),
        ("typeddict", "10KiB"),
    ]
    for row in rows:
        assert 0 < row["a_us_per_msg"] < 1000
        assert 0 < row["b_us_per_msg"] < 1000
