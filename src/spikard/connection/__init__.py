"""Connection layer: the connection contract and the drivers under it (``docs/connection.md``).

- :mod:`.contract`: :class:`WebSocketConnection`, all that the layers above may use;
- :mod:`.state`: :class:`ConnectionState` and its transition table;
- :mod:`.wire`: RFC 6455 over a byte transport (the one implementation today);
- :mod:`.transport`: what a driver provides; :mod:`.asyncio_driver` and
  :mod:`.stream_driver` are the two drivers;
- :mod:`.http`: HTTP/1.1 on a transport, and the WebSocket upgrade.
"""

from .contract import WebSocketConnection as WebSocketConnection
from .state import ConnectionState as ConnectionState

__all__ = ["ConnectionState", "WebSocketConnection"]
