"""TransportFeed: bytes pushed from transport callbacks, in order, with flow control."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from spikard.connection.feed import TransportFeed
from spikard.connection.transport import DirectReader


class FakeTransport:
    def __init__(self) -> None:
        self.reading = True
        self.closing = False

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing

    def set_protocol(self, protocol: Any) -> None:
        pass


class FakeEvent:
    def set(self) -> None:
        pass


class FakeProtocol:
    """The parts of anyio's stream protocol that the reader and the feed use."""

    def __init__(self) -> None:
        self.read_queue: deque[bytes] = deque()
        self.read_event = FakeEvent()
        self.is_at_eof = False
        self.exception: Exception | None = None
        self.event_loop = object()
        self.writable_again = 0

    def eof_received(self) -> bool:
        self.is_at_eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def resume_writing(self) -> None:
        self.writable_again += 1


class Consumer:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.ended = False
        self.full = False

    def feed(self, data: bytes) -> bool:
        assert not self.ended, "bytes after the end of the input"
        self.chunks.append(data)
        return not self.full

    def end_of_input(self) -> None:
        assert not self.ended, "the end of the input reported twice"
        self.ended = True

    @property
    def received(self) -> bytes:
        return b"".join(self.chunks)


def setup(
    queued: bytes = b"", chunk_size: int = 4, high_water: int = 16
) -> tuple[FakeProtocol, FakeTransport, DirectReader, Consumer, TransportFeed]:
    protocol = FakeProtocol()
    transport = FakeTransport()
    reader = DirectReader(transport, protocol, high_water=1024)
    if queued:
        protocol.data_received(queued)  # type: ignore[attr-defined]
    consumer = Consumer()
    feed = TransportFeed(reader, consumer, chunk_size, high_water)
    return protocol, transport, reader, consumer, feed


def arrive(protocol: FakeProtocol, data: bytes) -> None:
    protocol.data_received(data)  # type: ignore[attr-defined]


def test_bytes_queued_before_the_feed_come_first() -> None:
    protocol, _, _, consumer, feed = setup(queued=b"early")
    feed.start()
    arrive(protocol, b"late")
    assert consumer.received == b"earlylate"
    assert not protocol.read_queue


def test_a_read_is_handed_over_whole_while_the_consumer_keeps_up() -> None:
    protocol, _, _, consumer, feed = setup(chunk_size=4)
    feed.start()
    arrive(protocol, b"0123456789")
    assert consumer.chunks == [b"0123456789"]


def test_a_full_consumer_stalls_the_feed_and_the_backlog_pauses_reading() -> None:
    protocol, transport, _, consumer, feed = setup(chunk_size=4, high_water=16)
    feed.start()
    consumer.full = True
    arrive(protocol, b"a")
    assert consumer.chunks == [b"a"]
    arrive(protocol, b"b" * 10)
    assert consumer.chunks == [b"a"], "nothing is fed while stalled"
    assert transport.reading, "a backlog below the high-water mark keeps reading"
    arrive(protocol, b"c" * 10)
    assert not transport.reading, "above the high-water mark the transport pauses"
    consumer.full = False
    feed.resume()
    assert consumer.received == b"a" + b"b" * 10 + b"c" * 10
    assert all(len(chunk) <= 4 for chunk in consumer.chunks[1:]), "the backlog goes in chunks"
    assert transport.reading, "reading resumes once the backlog is drained"


def test_a_consumer_that_stalls_again_keeps_the_rest_of_the_backlog() -> None:
    protocol, _, _, consumer, feed = setup(chunk_size=4)
    feed.start()
    consumer.full = True
    arrive(protocol, b"x")
    arrive(protocol, b"0123456789")
    feed.resume()  # still full: takes one chunk, stalls again
    assert consumer.chunks == [b"x", b"0123"]
    consumer.full = False
    feed.resume()
    assert consumer.received == b"x0123456789"


@pytest.mark.parametrize("how", ["eof", "lost"])
def test_the_end_of_the_input_comes_after_every_byte_before_it(how: str) -> None:
    protocol, _, _, consumer, feed = setup(chunk_size=4)
    feed.start()
    consumer.full = True
    arrive(protocol, b"x")
    arrive(protocol, b"rest of it")
    if how == "eof":
        protocol.eof_received()
    else:
        protocol.connection_lost(None)
    assert not consumer.ended, "bytes still wait in the backlog"
    consumer.full = False
    feed.resume()
    assert consumer.received == b"xrest of it"
    assert consumer.ended


def test_an_end_that_came_before_the_feed_is_reported_after_the_queued_bytes() -> None:
    protocol = FakeProtocol()
    transport = FakeTransport()
    reader = DirectReader(transport, protocol, high_water=1024)
    arrive(protocol, b"last words")
    protocol.eof_received()
    consumer = Consumer()
    TransportFeed(reader, consumer, 4, 16).start()
    assert consumer.received == b"last words"
    assert consumer.ended


def test_replies_piling_up_stop_the_reads_until_the_transport_drains() -> None:
    protocol, transport, _, _, feed = setup()
    feed.start()
    feed.pause_until_writable()
    assert not transport.reading
    protocol.resume_writing()  # the transport drained (called by the event loop)
    assert protocol.writable_again == 1, "the protocol's own handling still runs"
    assert transport.reading


def test_a_stalled_start_feeds_nothing_until_resumed() -> None:
    _, _, _, consumer, feed = setup(queued=b"queued")
    feed.start(stalled=True)
    assert consumer.chunks == []
    feed.resume()
    assert consumer.received == b"queued"


def test_after_stop_bytes_queue_for_the_reader_again() -> None:
    protocol, _, _, consumer, feed = setup()
    feed.start()
    feed.stop()
    arrive(protocol, b"after")
    assert consumer.chunks == []
    assert list(protocol.read_queue) == [b"after"]
    assert "resume_writing" not in vars(protocol), "the feed's hook is off the protocol"
