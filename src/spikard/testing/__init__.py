"""A test kit for spikard applications: a real server on loopback and clients for it.

::

    async def test_chat() -> None:
        async with app.test_server() as server:
            async with server.connect("/chat?name=a") as ws:
                await ws.send_json({"text": "hi"})
                assert await ws.receive_json() == {"from": "a", "text": "hi"}

Runs on asyncio and trio alike (anyio's pytest plugin, ``@pytest.mark.anyio``).
"""

from .client import TestResponse, TestWebSocket
from .server import TestServerInfo, running_test_server

__all__ = ["TestResponse", "TestServerInfo", "TestWebSocket", "running_test_server"]
