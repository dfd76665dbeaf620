"""A bare anyio + wsproto echo loop, no framework: the floor of spikard's own stack.

One task per connection reads up to 64 KiB, feeds wsproto, and writes everything the read
produced in one send (once per read, not once per event). Partial messages are gathered until
the message is complete, then echoed whole. asyncio with uvloop, like spikard's default runner.
"""

from __future__ import annotations

import anyio
import anyio.abc
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason

from . import MAX_MESSAGE, parse_args

_READ_SIZE = 65536


async def serve_connection(stream: anyio.abc.ByteStream) -> None:
    ws = WSConnection(ConnectionType.SERVER)
    text_parts: list[str] = []
    binary_parts: list[bytes] = []
    size = 0
    async with stream:
        while True:
            try:
                data = await stream.receive(_READ_SIZE)
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                return
            ws.receive_data(data)
            out = bytearray()
            for event in ws.events():
                if isinstance(event, TextMessage):
                    text_parts.append(event.data)
                    size += len(event.data)
                    if event.message_finished:
                        out += ws.send(TextMessage(data="".join(text_parts)))
                        text_parts.clear()
                        size = 0
                elif isinstance(event, BytesMessage):
                    binary_parts.append(bytes(event.data))
                    size += len(event.data)
                    if event.message_finished:
                        out += ws.send(BytesMessage(data=b"".join(binary_parts)))
                        binary_parts.clear()
                        size = 0
                elif isinstance(event, Ping):
                    out += ws.send(event.response())
                elif isinstance(event, CloseConnection):
                    if ws.state is ConnectionState.REMOTE_CLOSING:
                        out += ws.send(event.response())
                elif isinstance(event, Request):
                    out += ws.send(AcceptConnection())
                if size > MAX_MESSAGE and ws.state is ConnectionState.OPEN:
                    out += ws.send(CloseConnection(code=CloseReason.MESSAGE_TOO_BIG))
            try:
                if out:
                    await stream.send(bytes(out))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return
            if ws.state is ConnectionState.CLOSED:
                return


async def serve(host: str, port: int) -> None:
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    await listener.serve(serve_connection)


def main() -> None:
    args = parse_args(__doc__ or "")
    anyio.run(serve, args.host, args.port, backend="asyncio", backend_options={"use_uvloop": True})


if __name__ == "__main__":
    main()
