"""picows (Cython, frame-level callbacks) on uvloop: the compiled ceiling.

picows hands the listener frames, not messages; each frame is echoed with its own opcode
and FIN bit, so a fragmented message comes back fragmented the same way.
"""

from __future__ import annotations

import asyncio
import signal

import uvloop
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

from . import MAX_MESSAGE, parse_args


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is WSMsgType.CLOSE:
            code = frame.get_close_code() if frame.payload_size >= 2 else WSCloseCode.OK
            transport.send_close(code, frame.get_close_message())
            transport.disconnect()
        elif msg_type is WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
        elif msg_type is not WSMsgType.PONG:
            transport.send(msg_type, frame.get_payload_as_memoryview(), frame.fin)


async def serve_forever(host: str, port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    server = await ws_create_server(
        lambda _request: Echo(), host, port, max_frame_size=MAX_MESSAGE, backlog=4096
    )
    async with server:
        await stop


def main() -> None:
    args = parse_args(__doc__ or "")
    uvloop.run(serve_forever(args.host, args.port))


if __name__ == "__main__":
    main()
