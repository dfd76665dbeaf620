"""Echo servers measured by the suite, one module each, started as ``python -m ... --port P``.

Every peer echoes text as text and binary as binary on path ``/``, with compression off and a
maximum message size of :data:`MAX_MESSAGE` (at least 1 MiB), and exits on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

MAX_MESSAGE = 4 * 1024 * 1024
"""Largest message every peer accepts (the 1 MiB point of the size sweep fits)."""

SPIKARD_SRC_ENV = "BENCH_SPIKARD_SRC"
"""When set (``benchmarks.run --before``), the ``src`` directory spikard must come from."""


def check_spikard_source() -> None:
    """Exit unless spikard was imported from ``$BENCH_SPIKARD_SRC``; nothing when it is unset.

    The harness sets it, with ``PYTHONPATH``, for servers that must run another checkout's
    spikard (``spikard-stream@before``); a peer that silently ran the installed one instead
    would make a before/after comparison compare the new code with itself.
    """
    expected = os.environ.get(SPIKARD_SRC_ENV)
    if not expected:
        return
    import spikard

    want = Path(expected).resolve() / "spikard"
    where = getattr(spikard, "__file__", None)
    got = Path(where).resolve().parent if where else None
    if got != want:
        sys.exit(f"{SPIKARD_SRC_ENV}: spikard was imported from {got}, expected {want}")
    print(f"spikard imported from {got}", file=sys.stderr, flush=True)


def parse_args(description: str, *, backend: bool = False) -> argparse.Namespace:
    """Parse ``--host`` and ``--port`` (and ``--backend`` for peers that offer one).

    Also runs :func:`check_spikard_source`, so a peer started for another checkout's spikard
    exits before listening if it imported the wrong one.
    """
    check_spikard_source()
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    if backend:
        parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    return parser.parse_args()
