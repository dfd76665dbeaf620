"""The echo servers of ``benchmarks/ops_bench.py`` echo every message, in order."""

from __future__ import annotations

import anyio
import pytest
from benchmarks.ops_bench import VARIANTS, build_app

from ..helpers import ws_connect

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("variant", VARIANTS)
async def test_every_variant_is_an_echo(variant: str) -> None:
    app = build_app(variant)
    async with app.test_server() as server, ws_connect(server.ws_url("/")) as client:
        messages = [f"m{index}" for index in range(40)] + [b"\x00\x01"]
        for message in messages:
            await client.send(message)
        with anyio.fail_after(10):
            assert [await client.recv() for _ in messages] == messages


def test_an_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        build_app("warp")
