"""Echo servers measured by the suite, one module each, started as ``python -m ... --port P``.

Every peer echoes text as text and binary as binary on path ``/``, with compression off and a
maximum message size of :data:`MAX_MESSAGE` (at least 1 MiB), and exits on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse

MAX_MESSAGE = 4 * 1024 * 1024
"""Largest message every peer accepts (the 1 MiB point of the size sweep fits)."""


def parse_args(description: str, *, backend: bool = False) -> argparse.Namespace:
    """Parse ``--host`` and ``--port`` (and ``--backend`` for peers that offer one)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    if backend:
        parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    return parser.parse_args()
