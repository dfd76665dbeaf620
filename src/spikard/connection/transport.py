"""What a driver gives the connection layer: the bytes of one accepted TCP (or TLS) connection.

Two drivers implement :class:`Transport`, each in a module of its own:

- :mod:`.asyncio_driver`: an ``asyncio.Protocol`` that owns its asyncio transport (plain TCP
  on asyncio and uvloop; the fast path);
- :mod:`.stream_driver`: any anyio byte stream (trio, TLS, ...), read by one task and
  written by another.

The contract every driver keeps:

- **Reading** is pulled (:meth:`Transport.receive`, for HTTP) until a :class:`FeedConsumer`
  takes over (:meth:`Transport.start_feeding`, for a WebSocket); from then on every byte is
  pushed to the consumer in order, followed by one :meth:`FeedConsumer.end_of_input`. A
  consumer that returns False from :meth:`FeedConsumer.feed` gets nothing more until it calls
  :meth:`Transport.resume_feeding`: that is the inbound backpressure.
- **Writing** never blocks and never splits: :meth:`Transport.write` queues all of its bytes
  after those queued before. Whoever must respect backpressure awaits :meth:`Transport.drain`.
  Cancelling ``drain`` leaves the bytes queued, so a cancelled send never leaves half a frame
  followed by other bytes on the wire.
- **Files**: :meth:`Transport.sendfile` sends a file's bytes after what is queued without
  copying them through Python where the driver and the OS allow it, else raises
  :class:`SendfileUnavailable` having sent nothing (the caller writes them instead).
- **Progress**: :attr:`Transport.bytes_sent` (what the OS took, monotonic) and
  :attr:`Transport.write_buffer_size` (what waits) tell a stalled peer from a slow one.
- **Closing**: the owner of a transport closes it. :meth:`Transport.close` flushes first,
  :meth:`Transport.abort` drops what is queued; both end the input (a pulled read returns
  ``b""``, a consumer gets ``end_of_input``) and wake every ``drain`` (which then raises
  :class:`TransportClosed`). :meth:`Transport.aclose` closes and waits a bounded time for the
  flush, then aborts.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from typing import IO, Protocol

from .events import Waiter

__all__ = [
    "FeedConsumer",
    "SendfileUnavailable",
    "Transport",
    "TransportClosed",
    "TransportState",
]


class TransportClosed(Exception):
    """The transport is closing or closed: nothing more can be written."""


class SendfileUnavailable(Exception):
    """This transport cannot hand file bytes to the OS directly; nothing was sent."""


class TransportState(enum.Enum):
    """A transport's life: ``OPEN`` -> ``CLOSING`` (flushing) -> ``CLOSED``; abort skips ahead."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class FeedConsumer(Protocol):
    """What :meth:`Transport.start_feeding` pushes bytes into."""

    def feed(self, data: bytes) -> bool:
        """Take ``data`` (all of it); return False to stop reading until resumed."""

    def end_of_input(self) -> None:
        """The peer closed its side, the connection was lost, or it was closed; called once."""

    def writable(self) -> None:
        """The write buffer drained below its low-water mark."""


class Transport(Protocol):
    """One connection's bytes; see the module docs for the contract."""

    @property
    def remote_address(self) -> tuple[str, int] | None:
        """The peer's (host, port), None if unknown."""

    @property
    def local_address(self) -> tuple[str, int] | None:
        """This end's (host, port): the address the peer connected to; None if unknown."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The asyncio loop the transport runs on, None elsewhere (trio)."""

    def new_event(self) -> Waiter:
        """An event for this transport's event loop (settable from its callbacks)."""

    def time(self) -> float:
        """The event loop's clock (callable from the transport's callbacks)."""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return the next bytes (pulled reading); ``b""`` once the input ended."""

    def start_feeding(self, consumer: FeedConsumer) -> None:
        """Push every byte from now on (and what was read ahead) into ``consumer``."""

    def resume_feeding(self) -> None:
        """The consumer takes bytes again after its ``feed`` returned False."""

    def pause_feeding(self) -> None:
        """Stop reading until :meth:`resume_feeding`, as if ``feed`` had returned False."""

    def stop_feeding(self) -> None:
        """Forget the consumer: it is called no more (the connection is over)."""

    def write(self, data: bytes) -> None:
        """Queue ``data`` whole after what was queued before; never blocks.

        Raises:
            TransportClosed: the transport is closing or closed.
        """

    def defer(self, callback: Callable[[], None]) -> bool:
        """Call ``callback`` on the event loop's next turn, to batch writes made until then.

        Returns False (and never calls it) when the driver batches writes on its own: the
        caller then writes at once.
        """

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> int:
        """Send ``count`` bytes of ``file`` from ``offset``, after what is queued.

        Returns how many went (fewer only at the end of the file). Waits until the OS took them.
        A cancelled call leaves an unknown part sent: the caller must then abort the transport.

        Raises:
            SendfileUnavailable: not on this transport (nothing was sent).
            TransportClosed: the transport is closing or closed, or failed meanwhile.
        """

    @property
    def writable(self) -> bool:
        """True while queued bytes are below the high-water mark (no need to drain)."""

    async def drain(self) -> None:
        """Wait until the queued bytes are below the high-water mark.

        Raises:
            TransportClosed: the transport closed (or was aborted) meanwhile.
        """

    @property
    def bytes_sent(self) -> int:
        """Bytes the operating system took so far (monotonic)."""

    @property
    def write_buffer_size(self) -> int:
        """Bytes queued and not yet taken by the operating system."""

    @property
    def state(self) -> TransportState:
        """Where the transport is in its life."""

    def close(self) -> None:
        """Write what is queued, then close."""

    def abort(self) -> None:
        """Close now, dropping what is queued."""

    async def aclose(self, timeout: float) -> None:
        """Close, wait at most ``timeout`` seconds for the queued bytes to go, then abort."""
