"""Server-Sent Events: the wire format against the WHATWG parsing rules, @app.sse and
EventSourceResponse over real sockets, keepalive, resume, departure.

:class:`EventStreamParser` follows WHATWG HTML, "Server-sent events", section "Parsing an
event stream" and "Interpreting an event stream", as a browser does; hypothesis checks that
whatever spikard encodes, that parser reads back as the same event. :class:`SSEClient` reads
a response with h11 as the client, so a test can tell a body that ended with its last chunk
from one that was cut; the server tests import both.
"""

from __future__ import annotations

import codecs
import itertools
import json
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType

import anyio
import anyio.abc
import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikard import EventSourceResponse, Request, RoutingError, ServerSentEvent, Spikard
from spikard.sse import encode_event

from ..helpers import read_until

# ---- a spec-following parser -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """A dispatched event as a browser's ``MessageEvent`` shows it."""

    type: str
    data: str
    last_event_id: str


_LINE_END = re.compile(r"\r\n|\r|\n")


class EventStreamParser:
    """Bytes of a ``text/event-stream`` body in, dispatched events out (any chunking).

    The stream is UTF-8 (invalid bytes become U+FFFD, one leading BOM is dropped); lines
    end with CRLF, LF or CR; a blank line dispatches; an event still pending at the end of
    the stream is discarded (``close`` tells nothing: it is never dispatched).
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buffer = ""
        self._at_start = True
        self._after_cr = False  # the last line ended with CR: a leading LF belongs to it
        self._data = ""
        self._type = ""
        self._id_buffer = ""
        self.last_event_id = ""
        self.retry: int | None = None
        """The reconnection time the stream set, in milliseconds."""

    def feed(self, data: bytes) -> list[Event]:
        text = self._decoder.decode(data)
        if self._at_start and text:
            self._at_start = False
            text = text.removeprefix("\ufeff")
        if self._after_cr and text:
            self._after_cr = False
            text = text.removeprefix("\n")
        self._buffer += text
        events: list[Event] = []
        while (end := _LINE_END.search(self._buffer)) is not None:
            line = self._buffer[: end.start()]
            if end.group() == "\r" and end.end() == len(self._buffer):
                self._after_cr = True  # CR at the end of what we have: maybe CRLF
            self._buffer = self._buffer[end.end() :]
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "event":
            self._type = value
        elif name == "data":
            self._data += value + "\n"
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry" and value and all("0" <= char <= "9" for char in value):
            self.retry = int(value)  # ASCII digits only; anything else is ignored
        return None  # any other field is ignored

    def _dispatch(self) -> Event | None:
        self.last_event_id = self._id_buffer
        data, self._data = self._data, ""
        event_type, self._type = self._type, ""
        if not data:
            return None
        return Event(event_type or "message", data.removesuffix("\n"), self.last_event_id)


def parse(data: bytes) -> list[Event]:
    return EventStreamParser().feed(data)


def test_the_parser_follows_the_spec() -> None:
    assert parse(b"data: a\r\ndata:b\r\rdata\n\n: comment\n\n") == [
        Event("message", "a\nb", ""),
        Event("message", "", ""),  # "data" alone is an empty data line, still an event
    ]
    assert parse(b"\xef\xbb\xbfevent: x\nid: 7\ndata:  two spaces\n\nid\ndata: y\n\n") == [
        Event("x", " two spaces", "7"),
        Event("message", "y", ""),  # "id" alone resets the last event id
    ]
    assert parse(b"id: a\0b\ndata: z\n\nunknown: field\nretry: 1x\n\ndata: no end") == [
        Event("message", "z", "")  # NUL: the id is ignored; the unterminated event too
    ]
    parser = EventStreamParser()
    assert parser.feed(b"retry: 250\nid: only\n\n") == []
    assert (parser.retry, parser.last_event_id) == (250, "only")
    parser = EventStreamParser()
    events = [event for byte in b"data: \xc3\xbc\r\n\r\n" for event in parser.feed(bytes([byte]))]
    assert events == [Event("message", "ü", "")]  # CRLF and UTF-8 split across reads


# ---- encoding: examples, refusals, and round trips through the parser ------------------------


def test_events_are_framed_line_by_line() -> None:
    event = ServerSentEvent("a\nb\r\nc", event="update", id="7", retry=1000, comment="note")
    assert event.encode() == (
        b": note\nevent: update\nid: 7\nretry: 1000\ndata: a\ndata: b\ndata: c\n\n"
    )
    assert encode_event("plain") == b"data: plain\n\n"
    assert encode_event({"k": "ü"}) == 'data: {"k":"ü"}\n\n'.encode()
    assert encode_event(ServerSentEvent(retry=3000)) == b"retry: 3000\n\n"
    assert encode_event(ServerSentEvent("")) == b"data: \n\n"
    assert parse(encode_event(ServerSentEvent(""))) == [Event("message", "", "")]


@pytest.mark.parametrize(
    "kwargs",
    [{"id": "a\nb"}, {"id": "a\rb"}, {"event": "x\ry"}, {"event": "x\r\n"}, {"id": "a\0b"}],
)
def test_a_line_break_in_event_or_id_or_nul_in_id_is_refused(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"line break|NUL"):
        ServerSentEvent("data", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("retry", [-1, -1000])
def test_a_negative_retry_is_refused(retry: int) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        ServerSentEvent(retry=retry)


@pytest.mark.parametrize("retry", [True, 1.5, "100", math.inf])
def test_retry_must_be_an_integer(retry: object) -> None:
    # a browser reads only ASCII digits: "retry: True" or "retry: 1.5" would be ignored
    with pytest.raises(TypeError, match="retry must be an int"):
        ServerSentEvent(retry=retry)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["data", "event", "id", "comment"])
def test_text_fields_must_be_str(name: str) -> None:
    with pytest.raises(TypeError, match=f"{name} must be str"):
        ServerSentEvent(**{name: 5})  # type: ignore[arg-type]


def test_values_that_are_not_json_are_a_clear_error() -> None:
    with pytest.raises(TypeError, match="not JSON-serializable"):
        encode_event(object())
    with pytest.raises(TypeError, match="not JSON-serializable"):
        encode_event({"x": math.nan})  # JSON.parse would reject NaN


def test_a_lone_surrogate_cannot_be_encoded() -> None:
    with pytest.raises(UnicodeEncodeError):
        ServerSentEvent("\ud800").encode()


# Any encodable character, with the ones the format treats specially drawn often.
_SPECIAL = "\r\n :\0\ufeff\u2028\x85"


def _text(exclude: str, max_size: int) -> st.SearchStrategy[str]:
    alphabet = st.sampled_from([c for c in _SPECIAL if c not in exclude]) | st.characters(
        codec="utf-8", exclude_characters=exclude
    )
    return st.text(alphabet, max_size=max_size)


any_text = _text("", 40)
one_line = _text("\r\n", 20)
id_text = _text("\r\n\0", 20)
retry_ms = st.integers(min_value=0, max_value=10**12)
events = st.builds(
    ServerSentEvent,
    data=st.none() | any_text,
    event=st.none() | one_line,
    id=st.none() | id_text,
    retry=st.none() | retry_ms,
    comment=st.none() | any_text,
)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEWER = settings(FAST, max_examples=80)


def _browser_data(data: str) -> str:
    return _LINE_END.sub("\n", data)


def _feed_in_pieces(parser: EventStreamParser, data: bytes, cuts: list[int]) -> list[Event]:
    bounds = [0, *sorted({cut % (len(data) + 1) for cut in cuts}), len(data)]
    return [event for a, b in itertools.pairwise(bounds) for event in parser.feed(data[a:b])]


@FAST
@given(events, st.lists(st.integers(min_value=0), max_size=8))
def test_any_event_reads_back_the_same(event: ServerSentEvent, cuts: list[int]) -> None:
    parser = EventStreamParser()
    got = _feed_in_pieces(parser, event.encode(), cuts)
    if event.data is None:
        assert got == []  # id and retry still take effect, as a browser's would
    else:
        expected_type = event.event or "message"  # an empty type is "message" too
        assert got == [Event(expected_type, _browser_data(event.data), event.id or "")]
    assert parser.last_event_id == (event.id or "")
    assert parser.retry == event.retry


@FAST
@given(st.lists(events, max_size=6), st.lists(st.integers(min_value=0), max_size=8))
def test_a_stream_of_events_reads_back_in_order(
    stream: list[ServerSentEvent], cuts: list[int]
) -> None:
    wire = b"".join(event.encode() for event in stream) + b": ping\n\n"
    expected: list[Event] = []
    last_id = ""
    for event in stream:
        last_id = event.id if event.id is not None else last_id  # an id persists
        if event.data is not None:
            expected.append(Event(event.event or "message", _browser_data(event.data), last_id))
    assert _feed_in_pieces(EventStreamParser(), wire, cuts) == expected


@FAST
@given(st.builds("{}{}{}".format, id_text, st.sampled_from(["\r", "\n", "\r\n", "\0"]), id_text))
def test_any_id_with_a_line_break_or_nul_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"line break|NUL"):
        ServerSentEvent("x", id=bad)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=10,
)


@FEWER
@given(json_values)
def test_yielded_values_arrive_as_their_json(value: object) -> None:
    events = parse(encode_event(value))
    if isinstance(value, str):
        assert events == [Event("message", _browser_data(value), "")]
    else:
        assert len(events) == 1
        assert json.loads(events[0].data) == value


# ---- a raw HTTP/1.1 client for event streams ---------------------------------------------


@dataclass
class SSEClient:
    """One connection reading one ``text/event-stream`` response, parsed with h11.

    ``clean`` tells how the body ended: True with its last chunk (h11's EndOfMessage), False
    when the connection was cut first (EOF mid-body or a reset). Every read is bounded by
    the caller's ``fail_after``.
    """

    stream: anyio.abc.ByteStream
    connection: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))
    parser: EventStreamParser = field(default_factory=EventStreamParser)
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    pending: list[Event] = field(default_factory=list)
    received: list[Event] = field(default_factory=list)
    """Every event taken so far, by next_event or read_to_end."""
    body: bytearray = field(default_factory=bytearray)
    clean: bool | None = None

    @classmethod
    async def open(
        cls, port: int, target: str = "/", headers: dict[str, str] | None = None
    ) -> SSEClient:
        """Connect, send ``GET target`` and read the response head."""
        client = cls(await anyio.connect_tcp("127.0.0.1", port))
        await client.send_request("GET", target, headers)
        await client.read_head()
        return client

    async def send_request(
        self, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> None:
        fields = [("host", "127.0.0.1"), *(headers or {}).items()]
        if body:
            fields.append(("content-length", str(len(body))))
        data = (
            self.connection.send(h11.Request(method=method, target=target, headers=fields)) or b""
        )
        if body:
            data += self.connection.send(h11.Data(data=body)) or b""
        data += self.connection.send(h11.EndOfMessage()) or b""
        await self.stream.send(data)

    async def _next(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        while (event := self.connection.next_event()) is h11.NEED_DATA:
            try:
                data = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                data = b""
            self.connection.receive_data(data)
            if not data:
                try:
                    return self.connection.next_event()
                except h11.RemoteProtocolError:
                    return h11.ConnectionClosed()  # cut mid-body
        return event

    async def read_head(self) -> None:
        event = await self._next()
        assert isinstance(event, h11.Response), event
        self.status = event.status_code
        self.parser = EventStreamParser()  # a new response is a new stream
        self.headers = {k.decode(): v.decode("latin-1") for k, v in event.headers}

    async def _pump(self) -> bool:
        """Read one h11 event of the body; False once the body is over."""
        event = await self._next()
        if isinstance(event, h11.Data):
            self.body += event.data
            self.pending += self.parser.feed(event.data)
            return True
        self.clean = isinstance(event, h11.EndOfMessage)
        return False

    async def next_event(self) -> Event:
        """The next event; AssertionError if the body ends first."""
        while not self.pending:
            assert await self._pump(), f"the stream ended (clean={self.clean})"
        event = self.pending.pop(0)
        self.received.append(event)
        return event

    async def read_to_end(self) -> list[Event]:
        """Every event until the body ends; then :attr:`clean` says how it ended."""
        while await self._pump():
            pass
        events, self.pending = self.pending, []
        self.received += events
        return events

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def __aenter__(self) -> SSEClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


# ---- over the wire ---------------------------------------------------------------------------

app = Spikard()
closed: list[str] = []


@app.sse("/feed", ping=0.2)
async def feed(request: Request) -> AsyncIterator[object]:
    start = int(request.last_event_id or 0)
    yield ServerSentEvent(f"after {start}", event="hello", id=str(start + 1), retry=500)
    yield "two\nlines"
    yield {"n": [1, 2]}
    await anyio.sleep_forever()  # only keepalive comments from here on


@app.sse("/finite", ping=None)
async def finite(request: Request) -> AsyncIterator[ServerSentEvent]:
    try:
        for n in range(3):
            yield ServerSentEvent(f"line {n}\r\nsecond", event="count", id=str(n))
    finally:
        closed.append("finite")


@app.sse("/forever", ping=0.05)
async def forever(request: Request) -> AsyncIterator[str]:
    closed.append("forever started")
    try:
        yield "first"
        await anyio.sleep_forever()
    finally:
        closed.append("forever finally")
        with anyio.move_on_after(1, shield=True):  # cleanup that awaits, bounded
            await anyio.sleep(0.01)
            closed.append("forever cleaned up")


@app.get("/echo-id")
async def echo_id(request: Request) -> EventSourceResponse:
    async def events() -> AsyncIterator[str]:
        yield request.last_event_id or "none"

    return EventSourceResponse(events(), ping=None)


@app.get("/returned")
async def returned(request: Request) -> EventSourceResponse:
    async def events() -> AsyncIterator[str]:
        yield "only"

    return EventSourceResponse(events(), ping=None)


@pytest.fixture(autouse=True)
def _clear() -> None:
    closed.clear()


def test_sse_needs_an_async_generator() -> None:
    with pytest.raises(RoutingError, match="async generator function"):

        @app.sse("/wrong")
        async def wrong(request: Request) -> str:
            return "no"


async def _nothing() -> AsyncIterator[str]:
    return
    yield


def test_event_source_response_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="async iterable"):
        EventSourceResponse(["not async"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ping must be positive"):
        EventSourceResponse(_nothing(), ping=0)


async def read_stream(port: int, target: str, extra: str = "", until: bytes = b"") -> bytes:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(f"GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        with anyio.fail_after(5):
            return await read_until(stream, until)


async def test_an_sse_route_streams_events_and_keepalive_comments() -> None:
    async with app.test_server() as server:
        data = await read_stream(server.port, "/feed", until=b": ping\n\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-type: text/event-stream" in head.lower()
    assert b"cache-control: no-cache" in head.lower()
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"event: hello\nid: 1\nretry: 500\ndata: after 0\n\n" in body
    assert b"data: two\ndata: lines\n\n" in body
    assert b'data: {"n":[1,2]}\n\n' in body


async def test_the_stream_parses_as_a_browser_would() -> None:
    async with app.test_server() as server, await SSEClient.open(server.port, "/feed") as client:
        with anyio.fail_after(5):
            assert [await client.next_event() for _ in range(3)] == [
                Event("hello", "after 0", "1"),
                Event("message", "two\nlines", "1"),  # the id carries over
                Event("message", '{"n":[1,2]}', "1"),
            ]
            await read_until(client.stream, b": ping\n\n")  # pings are comments: no events
        assert client.parser.retry == 500
        assert client.status == 200
        assert client.headers["content-type"] == "text/event-stream; charset=utf-8"


async def test_a_finished_stream_ends_with_its_last_chunk_and_the_connection_stays() -> None:
    async with app.test_server() as server, await SSEClient.open(server.port, "/finite") as client:
        with anyio.fail_after(5):
            events = await client.read_to_end()
            assert client.clean
            assert events == [Event("count", f"line {n}\nsecond", str(n)) for n in range(3)]
            assert closed == ["finite"]
            client.connection.start_next_cycle()  # keep-alive: the next request on the same socket
            await client.send_request("GET", "/returned")
            await client.read_head()
            assert await client.read_to_end() == [Event("message", "only", "")]
            assert client.clean


async def test_the_client_leaving_closes_the_generator() -> None:
    async with app.test_server() as server:
        async with await SSEClient.open(server.port, "/forever") as client:
            with anyio.fail_after(5):
                assert await client.next_event() == Event("message", "first", "")
        with anyio.fail_after(5):
            while "forever cleaned up" not in closed:
                await anyio.sleep(0.01)
        assert closed == ["forever started", "forever finally", "forever cleaned up"]


async def test_head_never_starts_the_generator() -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(b"HEAD /forever HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with anyio.fail_after(5):
            data = await read_until(stream, b"never")  # read to EOF
    assert data.startswith(b"HTTP/1.1 200")
    assert b"text/event-stream" in data
    assert data.endswith(b"\r\n\r\n")  # no body
    assert closed == []


async def test_last_event_id_lets_the_handler_resume() -> None:
    async with app.test_server() as server:
        data = await read_stream(
            server.port, "/feed", extra="Last-Event-ID: 41\r\n", until=b"data: after 41\n\n"
        )
    assert b"id: 42" in data


async def test_a_non_ascii_last_event_id_comes_back_as_sent() -> None:
    # Chromium sends the id it saw ("ü✓") as its UTF-8 bytes in Last-Event-ID.
    async with app.test_server() as server, await anyio.connect_tcp("127.0.0.1", server.port) as s:
        request = "GET /echo-id HTTP/1.1\r\nHost: x\r\nLast-Event-ID: ü✓\r\n\r\n".encode()
        await s.send(request)
        with anyio.fail_after(5):
            data = await read_until(s, b"\n\n")
    assert "data: ü✓\n\n".encode() in data


async def test_a_returned_event_source_response_streams() -> None:
    async with app.test_server() as server:
        data = await read_stream(server.port, "/returned", until=b"data: only\n\n")
    assert b"data: only\n\n" in data


async def test_typed_values_are_sent_as_json() -> None:
    import dataclasses

    import msgspec

    from spikard import Spikard

    class Tick(msgspec.Struct):
        n: int

    @dataclasses.dataclass
    class Note:
        text: str

    app = Spikard()

    @app.sse("/typed")
    async def typed() -> AsyncIterator[object]:
        yield Tick(1)
        yield Note("hi")
        yield {"nested": [Tick(2)]}

    async with app.test_server() as server:
        reply = await server.request("GET", "/typed")
    assert reply.text == 'data: {"n":1}\n\ndata: {"text":"hi"}\n\ndata: {"nested":[{"n":2}]}\n\n'
