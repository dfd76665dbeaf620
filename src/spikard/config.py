"""Every limit and timeout spikard applies, with its default, in one place.

Pass instances to :class:`~spikard.Spikard`::

    app = Spikard(websocket=WebSocketConfig(max_message_size=16 * 2**20, ping_interval=5))
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

from .protocol.forwarded import TrustedProxies
from .protocol.hosts import HostMatcher
from .protocol.origins import OriginMatcher
from .protocol.redaction import DEFAULT_REDACTED_PARAMS

__all__ = ["HTTPConfig", "WebSocketConfig"]

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True)
class WebSocketConfig:
    """Limits and timers of every WebSocket connection."""

    max_message_size: int = 1 * MiB
    """Largest incoming message, in bytes (text is counted in characters); larger closes 1009."""
    max_frame_size: int | None = None
    """Largest single frame (after decompression); None means ``max_message_size``."""
    max_queue: int = 16
    """Incoming messages buffered for a stream handler before the server stops reading."""
    ping_interval: float | None = 20.0
    """Seconds between keepalive pings; None disables keepalive."""
    ping_timeout: float = 20.0
    """Seconds to wait for the pong before closing with 1011."""
    close_timeout: float = 10.0
    """Seconds to wait for the peer's close frame once ours is sent, before dropping TCP."""
    read_size: int = 64 * KiB
    """Bytes asked of the socket per read."""
    handler_grace: float = 1.0
    """Seconds a handler may keep running after the peer left, once it saw the end of input."""
    accept_timeout: float = 5.0
    """Seconds a handler has to accept or refuse the handshake, counted from the complete
    request (``on_connect`` and handshake middleware included). A handler that has done
    neither by then is cancelled and the client gets 500 (it may have been authenticating:
    never accepted for it), with a WARNING naming the route."""
    permessage_deflate: bool = False
    """Accept a client's permessage-deflate offer (RFC 7692); costs CPU and memory per socket."""
    max_connections: int = 10_000
    """Most WebSockets open at once (per process); more handshakes get 503 + Retry-After."""
    retry_after: int = 5
    """Seconds announced in ``Retry-After`` when ``max_connections`` turns a handshake away."""
    max_connections_per_client: int | Literal["auto"] | None = "auto"
    """Most WebSockets one client address may hold open at once (per process; IPv6 by /64;
    the forwarded address behind trusted proxies); more get 429 + Retry-After. ``"auto"``:
    ``max_connections // 10`` (at least 1). None: no limit (benchmarks, load tests)."""
    handshake_rate: float | None = 200.0
    """Handshakes per second one client address may open, on average (a token bucket, per
    process); faster ones get 429 + Retry-After. None: no limit."""
    handshake_burst: int = 1000
    """How many handshakes a client address may open at once before ``handshake_rate``
    applies (generous: many users may share one NAT)."""
    allowed_origins: str | tuple[str, ...] | None = "same-origin"
    """Browser origins allowed to connect. ``"same-origin"`` (the default): only pages served
    by this server (the ``Origin`` matches the request's own scheme, host and port, ``ws``
    matching ``http`` and ``wss`` matching ``https``); ``"*"``: any; or a tuple of origins,
    exact (``"https://app.example.com"``) or subdomain patterns (``"https://*.example.com"``),
    the syntax of :class:`~spikard.CORSMiddleware`, which may include ``"same-origin"``. A
    handshake with another ``Origin`` (``null`` included) gets 403. Clients that send no
    ``Origin`` (non-browsers) always pass. ``None`` is a deprecated alias of ``"*"``."""
    idle_timeout: float | None = None
    """Close with 1000 after this many seconds without a message either way; None: never."""
    write_timeout: float | None = None
    """Seconds a write may make no progress (the peer reads nothing) before the connection
    is dropped; any progress restarts the clock. None means ``ping_timeout``."""
    max_buffered_bytes: int | None = 256 * MiB
    """Inbound bytes buffered for applications across every connection of the process;
    above it, connections stop reading until applications catch up. None: no bound."""

    @property
    def per_client_limit(self) -> int | None:
        """``max_connections_per_client`` as a number (``"auto"`` resolved), or None."""
        limit = self.max_connections_per_client
        if limit == "auto":
            return max(1, self.max_connections // 10)
        return limit

    @property
    def effective_write_timeout(self) -> float:
        """``write_timeout``, or ``ping_timeout`` when it is not set."""
        return self.write_timeout if self.write_timeout is not None else self.ping_timeout

    def __post_init__(self) -> None:
        _positive("max_message_size", self.max_message_size)
        _positive("max_queue", self.max_queue)
        _positive("ping_timeout", self.ping_timeout)
        _positive("close_timeout", self.close_timeout)
        _positive("read_size", self.read_size)
        if self.ping_interval is not None:
            _positive("ping_interval", self.ping_interval)
        if self.handler_grace < 0:
            raise ValueError("handler_grace must not be negative")
        _positive("accept_timeout", self.accept_timeout)
        limit = self.max_connections_per_client
        if limit is not None and limit != "auto":
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise TypeError(
                    f"max_connections_per_client must be an int, 'auto' or None, got {limit!r}"
                )
            _positive("max_connections_per_client", limit)
        if self.handshake_rate is not None:
            _positive("handshake_rate", self.handshake_rate)
        _positive("handshake_burst", self.handshake_burst)
        if self.max_frame_size is not None:
            _positive("max_frame_size", self.max_frame_size)
        _positive("max_connections", self.max_connections)
        if self.retry_after < 0:
            raise ValueError("retry_after must not be negative")
        if self.idle_timeout is not None:
            _positive("idle_timeout", self.idle_timeout)
        if self.write_timeout is not None:
            _positive("write_timeout", self.write_timeout)
        if self.max_buffered_bytes is not None:
            _positive("max_buffered_bytes", self.max_buffered_bytes)
        if self.allowed_origins is None:
            warnings.warn(
                "WebSocketConfig(allowed_origins=None) is deprecated: it allows every origin; "
                'say allowed_origins="*" (or keep the default, "same-origin")',
                DeprecationWarning,
                stacklevel=3,
            )
            object.__setattr__(self, "allowed_origins", "*")
        elif isinstance(self.allowed_origins, str):
            if self.allowed_origins not in ("same-origin", "*"):
                raise ValueError(
                    f"allowed_origins={self.allowed_origins!r}: give 'same-origin', '*' or a "
                    "tuple of origins such as ('https://app.example.com',)"
                )
        else:
            OriginMatcher(self.allowed_origins)  # ValueError for an entry that is no origin


@dataclass(frozen=True, slots=True)
class HTTPConfig:
    """Limits and timers of the HTTP/1.1 layer, the WebSocket handshake included."""

    max_header_bytes: int = 16 * KiB
    """Largest request head (request line and headers); larger answers 431."""
    max_header_count: int = 100
    """Most header fields in one request; more answers 431."""
    max_body_size: int = 1 * MiB
    """Largest request body by default (``request.max_body_size`` changes it for one request
    until its body is first read); reading a larger one raises ``ContentTooLarge`` (413)."""
    request_timeout: float = 10.0
    """Seconds to receive a whole request head once it starts; the handshake too. The body
    is read as the handler asks for it, under ``body_timeout``."""
    body_timeout: float = 20.0
    """Seconds a request body read may wait without receiving a byte; every byte restarts
    the clock, so a slow upload that keeps moving is never cut. A stalled one raises
    ``BodyTimeout`` (408) in the handler and the connection closes."""
    keep_alive_timeout: float = 5.0
    """Seconds an idle keep-alive connection waits for its next request."""
    shutdown_timeout: float = 10.0
    """Seconds open connections get to finish after a shutdown starts, before they are cut."""
    write_timeout: float = 20.0
    """Seconds a response write may make no progress (the client takes none of its bytes)
    before the connection is aborted; a streamed response is never cut while it moves."""
    backlog: int = 4096
    """Connections the kernel queues before they are accepted (``listen()``'s backlog; the
    kernel caps it at ``net.core.somaxconn``). The same on every backend."""
    server_header: str | None = None
    """The ``Server`` header of every response; None (the default) sends none."""
    linger_timeout: float = 2.0
    """After an early error (400, 413, 431, 505), or a response that left the request body
    unread, what the client still sends is read and dropped for at most this many seconds
    (and at most 4 MiB) before the connection closes, so that a client still sending reads
    the response instead of a reset. It also bounds the discarding of a small unread body
    (at most 64 KiB) that keeps a keep-alive connection open."""
    redacted_query_params: tuple[str, ...] = DEFAULT_REDACTED_PARAMS
    """Query parameters whose values log lines show as ``***`` (case-insensitive):
    ``token``, ``access_token``, ``api_key``, ``password``, ``secret``, ``auth`` by default.
    Header values are never logged."""
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1",)
    """Peers whose ``Forwarded`` / ``X-Forwarded-For``, ``-Proto`` and ``-Host`` headers are
    believed (addresses, networks such as ``"10.0.0.0/8"``, or ``"*"``); they then set
    ``request.client``, ``request.scheme``, ``request.host``/``url``, the same-origin check,
    the per-client limits and the access log. From other peers these headers are ignored."""
    allowed_hosts: tuple[str, ...] | None = None
    """``Host`` header values the server answers (``"example.com"``, ``"*.example.com"``,
    ``"127.0.0.1"``; any port), against DNS rebinding; a request for another host gets 400.
    None (the default) answers any host."""

    def __post_init__(self) -> None:
        if self.allowed_hosts is not None:
            HostMatcher(self.allowed_hosts)  # ValueError for an entry that is no host name
        TrustedProxies(self.forwarded_allow_ips)  # ValueError for an entry that is no address
        if isinstance(self.redacted_query_params, str):
            raise TypeError("redacted_query_params must be a tuple of names, not a string")
        _positive("max_header_bytes", self.max_header_bytes)
        _positive("max_header_count", self.max_header_count)
        _positive("max_body_size", self.max_body_size)
        _positive("request_timeout", self.request_timeout)
        _positive("body_timeout", self.body_timeout)
        _positive("keep_alive_timeout", self.keep_alive_timeout)
        _positive("shutdown_timeout", self.shutdown_timeout)
        _positive("backlog", self.backlog)
        _positive("write_timeout", self.write_timeout)
        _positive("linger_timeout", self.linger_timeout)
        if self.server_header is not None:
            try:
                encoded = self.server_header.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError("server_header must be latin-1 text") from None
            if not encoded or any(byte < 0x20 or byte == 0x7F for byte in encoded):
                raise ValueError(f"server_header {self.server_header!r} is not a header value")


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
