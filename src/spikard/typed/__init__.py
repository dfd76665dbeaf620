"""Typed and JSON WebSocket messages: codecs for declared types, and what invalid input gets.

A handler declares the type of its incoming messages (``WebSocket[ChatIn]``, or
``@app.websocket(path, receive=ChatIn)``, or ``socket.typed(ChatIn)``) and receives
validated instances; what it yields or sends is encoded to JSON text. msgspec is the fast
path (``pip install -e '.[msgspec]'``); pydantic v2 models need ``[pydantic]``. See
:mod:`spikard.typed.codecs` for which library reads which type.
"""

from .codecs import TAG_FIELD, Codec, MissingExtra, codec_for
from .errors import InvalidMessage
from .policy import OnInvalid

__all__ = ["TAG_FIELD", "Codec", "InvalidMessage", "MissingExtra", "OnInvalid", "codec_for"]
