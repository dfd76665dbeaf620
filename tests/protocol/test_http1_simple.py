"""The simple-exchange fast path gives exactly h11's answers, or declines.

Hypothesis builds request heads from valid and broken pieces (methods, targets with spaces,
controls and obs-text, versions, ``Host`` missing or repeated, framing and ``Expect`` fields,
folded lines, bare ``\\n`` line endings, leading blank lines, values with tabs, controls and
commas) and whole responses (statuses, reasons, field names and values h11 refuses,
``content-length`` right, wrong, repeated or missing, ``connection: close``, bodies, HEAD).

- A head :func:`parse_simple_head` accepts is one h11, fed the same bytes in a random
  chunking, reads as the same ``Request`` followed by ``EndOfMessage``, and one that passes
  spikard's own checks on top of h11 (version, control characters, sizes, framing).
- Bytes :func:`simple_response` returns are the bytes h11 writes for that response to that
  request, and the connection goes on exactly when h11 says it may.
- A streamed response's head from :func:`streamed_response_head`, and each chunk and the
  end its :class:`BodyFraming` writes, are h11's bytes; a body longer or shorter than its
  ``content-length`` fails where h11 fails; the connection goes on when h11's does.
"""

from __future__ import annotations

import itertools

import h11
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from spikard.protocol.http1 import (
    ambiguous_framing,
    bad_header_value,
    reason_phrase,
    unsupported_version,
)
from spikard.protocol.http1_simple import (
    FOR_H11,
    NEED_DATA,
    BodyLengthError,
    find_head_end,
    parse_simple_head,
    simple_response,
    streamed_response_head,
)

MAX_BYTES = 2048
MAX_FIELDS = 12
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

methods = st.one_of(
    st.sampled_from([b"GET", b"HEAD", b"DELETE", b"OPTIONS", b"get", b"POST", b"PATCH"]),
    st.binary(min_size=0, max_size=6),
)
targets = st.one_of(
    st.sampled_from([b"/", b"/items/1?q=a%20b", b"*", b"http://h/x", b"/caf\xc3\xa9", b"/a b"]),
    st.binary(min_size=0, max_size=10),
)
versions = st.sampled_from([b"1.1", b"1.1", b"1.0", b"1.2", b"2.0", b"0.9", b"1.1 ", b"11"])
names = st.one_of(
    st.sampled_from(
        [
            b"Host",
            b"host",
            b"Accept",
            b"User-Agent",
            b"Connection",
            b"Content-Length",
            b"Transfer-Encoding",
            b"Expect",
            b"Upgrade",
            b"X-Token",
            b"bad name",
            b"",
            b"X-\xff",
        ]
    ),
    st.text(alphabet="abcXYZ-_!~.:", min_size=0, max_size=6).map(str.encode),
)
values = st.one_of(
    st.sampled_from(
        [b"127.0.0.1", b"close", b"keep-alive, Close", b"*/*", b"0", b"chunked", b"100-continue"]
    ),
    st.binary(max_size=8).filter(lambda value: b"\r\n" not in value),
    st.text(alphabet=" \t,ab\x07\x7f\x80é", max_size=8).map(lambda text: text.encode("utf-8")),
)
line_ends = st.sampled_from([b"\r\n"] * 8 + [b"\n"])
field_lines = st.one_of(
    st.tuples(names, st.sampled_from([b":", b": ", b":\t", b" :", b"::"]), values).map(b"".join),
    st.sampled_from([b" folded", b"\tfolded", b"no-colon"]),
)


@st.composite
def request_heads(draw: st.DrawFn) -> bytes:
    method, target, version = draw(methods), draw(targets), draw(versions)
    lines = [
        draw(st.sampled_from([b"", b"", b"", b"\r\n"]))
        + b"%s %s HTTP/%s"
        % (
            method,
            target,
            version,
        )
    ]
    if draw(st.booleans()):
        lines.append(b"Host: " + draw(st.sampled_from([b"127.0.0.1:8000", b"example.com", b""])))
    lines += draw(st.lists(field_lines, max_size=MAX_FIELDS + 2))
    head = b"".join(line + draw(line_ends) for line in lines)
    return head + draw(line_ends)


valid_values = st.one_of(
    st.sampled_from([b"127.0.0.1", b"close", b"keep-alive, Close", b"*/*", b"a, b", b""]),
    st.text(alphabet="ab,;= \t\x80\xff~!", max_size=8).map(lambda text: text.encode("latin-1")),
)
valid_fields = st.tuples(
    st.sampled_from([b"Accept", b"Connection", b"connection", b"X-Token", b"Cookie", b"a~b"]),
    st.sampled_from([b":", b": ", b":\t", b":  "]),
    valid_values,
).map(b"".join)


@st.composite
def plausible_heads(draw: st.DrawFn) -> bytes:
    """Heads that are mostly valid, so that the fast path takes many of them."""
    method = draw(st.sampled_from([b"GET", b"HEAD", b"DELETE", b"OPTIONS", b"get"]))
    target = draw(st.sampled_from([b"/", b"/items/1?q=a%20b", b"*", b"/caf\xc3\xa9", b"/~x"]))
    version = draw(st.sampled_from([b"1.1", b"1.1", b"1.0"]))
    lines = [b"%s %s HTTP/%s" % (method, target, version)]
    fields = draw(st.lists(valid_fields, max_size=MAX_FIELDS))
    if version == b"1.1" or draw(st.booleans()):
        fields.insert(draw(st.integers(0, len(fields))), b"Host: h:1")
    if draw(st.integers(0, 9)) == 0:
        fields.append(draw(field_lines))  # one odd line
    return b"".join(line + b"\r\n" for line in lines + fields) + b"\r\n"


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[start:stop] for start, stop in itertools.pairwise(points)]


def h11_read(data: bytes, cuts: list[int]) -> tuple[h11.Connection, list[h11.Event]]:
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_BYTES)
    events: list[h11.Event] = []
    for chunk in chunked(data, cuts):
        connection.receive_data(chunk)
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            events.append(event)  # type: ignore[arg-type]
            if isinstance(event, h11.EndOfMessage):
                return connection, events
    return connection, events


@SETTINGS
@given(
    st.one_of(request_heads(), plausible_heads()),
    st.binary(max_size=6),
    st.lists(st.integers(0, 4096), max_size=6),
)
def test_an_accepted_head_is_what_h11_reads(head: bytes, after: bytes, cuts: list[int]) -> None:
    buffer = bytearray(head + after)
    end = find_head_end(buffer)
    simple = (
        None
        if end < 0
        else parse_simple_head(buffer, end, max_bytes=MAX_BYTES, max_fields=MAX_FIELDS)
    )
    event("declined" if simple is None else "taken")
    if simple is None:
        return  # declined: h11 reads these bytes, as it always did
    assert simple.raw == bytes(buffer[: end + 4])
    connection, events = h11_read(simple.raw, cuts)  # raises if h11 refuses the head
    request, end_of_message = events
    assert isinstance(request, h11.Request)
    assert isinstance(end_of_message, h11.EndOfMessage)
    assert (simple.method, simple.target, simple.http_version) == (
        request.method,
        request.target,
        request.http_version,
    )
    assert simple.headers == list(request.headers)
    # spikard's checks on top of h11 pass: this head needs no error answer
    assert not unsupported_version(request.http_version)
    assert bad_header_value(request.headers) is None
    assert not ambiguous_framing(request.headers)
    assert len(request.headers) <= MAX_FIELDS
    size = len(request.method) + len(request.target) + 12
    size += sum(len(name) + len(value) + 4 for name, value in request.headers.raw_items())
    assert size <= MAX_BYTES
    # h11's keep-alive decision, read off a response
    connection.send(h11.Response(status_code=200, headers=[(b"content-length", b"0")]))
    connection.send(h11.EndOfMessage())
    assert simple.keep_alive is (connection.our_state is h11.DONE)


@SETTINGS
@given(st.one_of(request_heads(), plausible_heads()), st.integers(0, 200), st.binary(max_size=4))
def test_waiting_for_a_head_end_is_what_h11_does(head: bytes, cut: int, noise: bytes) -> None:
    buffer = head[: cut % (len(head) + 1)] + noise
    end = find_head_end(buffer)
    if end >= 0:
        assert buffer[end : end + 4] == b"\r\n\r\n"
        assert b"\n\n" not in buffer[: end + 4]
        assert b"\n\r\n" not in buffer[: end + 1]
        return
    if end == FOR_H11:
        return
    assert end == NEED_DATA
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_BYTES)
    if buffer:  # (an empty one would be the end of the stream)
        connection.receive_data(buffer)
    assert connection.next_event() is h11.NEED_DATA  # h11 waits as well, without an error


def test_common_heads_are_taken() -> None:
    heads = [
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: x\r\n\r\n",
        b"GET /items/1?q=a HTTP/1.1\r\nhost: h\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
        b"HEAD /x HTTP/1.0\r\n\r\n",
        b"DELETE /x HTTP/1.1\r\nHost: h\r\nCookie: a=b; c=d\r\nX-Empty:\r\n\r\n",
        # a WebSocket handshake: a GET without a body (its 101 is written by the server)
        b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ]
    for head in heads:
        simple = parse_simple_head(head, head.find(b"\r\n\r\n"), max_bytes=8192, max_fields=100)
        assert simple is not None, head
    close = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, close\r\n\r\n"
    simple = parse_simple_head(close, close.find(b"\r\n\r\n"), max_bytes=8192, max_fields=100)
    assert simple is not None
    assert not simple.keep_alive


@pytest.mark.parametrize(
    "head",
    [
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x07b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
        b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",  # a 2xx switches protocols in h11
    ],
)
def test_heads_for_h11(head: bytes) -> None:
    assert parse_simple_head(head, head.find(b"\r\n\r\n"), max_bytes=8192, max_fields=100) is None


statuses = st.one_of(st.sampled_from([200, 201, 204, 304, 404, 500, 999]), st.integers(100, 1001))
plain_fields = st.lists(
    st.tuples(
        st.sampled_from([b"content-type", b"set-cookie", b"x-a", b"Content-Type"]),
        st.sampled_from([b"text/plain", b"a=b; Path=/", b"", b"a\tb", b"\xe9"]),
    ),
    max_size=4,
)
response_fields = plain_fields | st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from([b"content-type", b"set-cookie", b"x-a", b"Content-Type"]),
            st.sampled_from([b"text/plain", b"a=b; Path=/", b"", b" lead", b"trail ", b"a\tb"]),
        ),
        st.tuples(
            st.sampled_from([b"connection", b"transfer-encoding", b"bad name", b"x\x00"]),
            st.sampled_from([b"keep-alive", b"chunked", b"close", b"a\x07b", b"x\r\ny"]),
        ),
    ),
    max_size=4,
)


@SETTINGS
@given(
    st.sampled_from([b"GET", b"HEAD"]),
    st.sampled_from([b"1.1", b"1.0"]),
    st.booleans(),  # the request says Connection: close
    statuses,
    response_fields,
    st.binary(max_size=12),
    st.sampled_from(["exact", "exact", "none", "wrong", "twice"]),
    st.booleans(),  # the server adds connection: close
)
def test_simple_response_bytes_are_h11s(
    method: bytes,
    version: bytes,
    request_close: bool,
    status: int,
    fields: list[tuple[bytes, bytes]],
    body: bytes,
    length: str,
    server_close: bool,
) -> None:
    head = b"%s / HTTP/%s\r\nHost: h\r\n%s\r\n" % (
        method,
        version,
        b"Connection: close\r\n" if request_close else b"",
    )
    simple = parse_simple_head(head, head.find(b"\r\n\r\n"), max_bytes=8192, max_fields=100)
    assert simple is not None
    headers = list(fields)
    exact = b"%d" % len(body)
    headers += {
        "exact": [(b"content-length", exact)],
        "none": [],
        "wrong": [(b"content-length", b"%d" % (len(body) + 1))],
        "twice": [(b"content-length", exact)] * 2,
    }[length]
    headers.append((b"date", b"Thu, 03 Dec 2026 17:48:18 GMT"))
    if server_close:
        headers.append((b"connection", b"close"))
    reason = reason_phrase(status)
    ours = simple_response(
        status, reason, headers, body, head_request=method == b"HEAD", keep_alive=simple.keep_alive
    )
    event("declined" if ours is None else "written")
    if ours is None:
        return  # declined: h11 writes it (or refuses it: a 500), as it always did
    data, goes_on = ours
    connection, _ = h11_read(head, [])
    written = connection.send(h11.Response(status_code=status, headers=headers, reason=reason))
    assert written is not None
    if method != b"HEAD" and body:
        written += connection.send(h11.Data(data=body)) or b""
    written += connection.send(h11.EndOfMessage()) or b""
    assert data == written
    assert goes_on is (connection.our_state is h11.DONE)


@SETTINGS
@given(
    st.sampled_from([b"GET", b"HEAD"]),
    st.sampled_from([b"1.1", b"1.0"]),
    st.booleans(),  # the request says Connection: close
    statuses,
    response_fields,
    st.lists(st.binary(max_size=6), max_size=4),
    st.sampled_from(["none", "none", "exact", "short", "long", "twice", "odd"]),
    st.booleans(),  # the server adds connection: close
)
def test_streamed_response_bytes_are_h11s(
    method: bytes,
    version: bytes,
    request_close: bool,
    status: int,
    fields: list[tuple[bytes, bytes]],
    chunks: list[bytes],
    length: str,
    server_close: bool,
) -> None:
    head = b"%s / HTTP/%s\r\nHost: h\r\n%s\r\n" % (
        method,
        version,
        b"Connection: close\r\n" if request_close else b"",
    )
    simple = parse_simple_head(head, head.find(b"\r\n\r\n"), max_bytes=8192, max_fields=100)
    assert simple is not None
    total = sum(map(len, chunks))
    headers = list(fields)
    if server_close:
        headers.insert(len(headers) // 2, (b"connection", b"close"))
    headers += {
        "none": [],
        "exact": [(b"content-length", b"%d" % total)],
        "short": [(b"content-length", b"%d" % (total + 1))],
        "long": [(b"content-length", b"%d" % max(total - 1, 0))],
        "twice": [(b"content-length", b"%d" % total)] * 2,
        "odd": [(b"content-length", b" 1")],
    }[length]
    reason = reason_phrase(status)
    ours = streamed_response_head(
        status,
        reason,
        headers,
        head_request=method == b"HEAD",
        keep_alive=simple.keep_alive,
        http_version=simple.http_version,
    )
    event("declined" if ours is None else "written")
    if ours is None:
        return
    our_head, framing, goes_on = ours
    event(framing.framing.value)
    connection, _ = h11_read(head, [])
    assert our_head == connection.send(
        h11.Response(status_code=status, headers=headers, reason=reason)
    )
    for chunk in chunks if method != b"HEAD" else []:
        try:
            theirs = connection.send(h11.Data(data=chunk)) or b""
        except h11.LocalProtocolError:
            with pytest.raises(BodyLengthError):
                framing.data(chunk)
            return
        assert framing.data(chunk) == theirs
    try:
        theirs = connection.send(h11.EndOfMessage()) or b""
    except h11.LocalProtocolError:
        with pytest.raises(BodyLengthError):
            framing.end()
        return
    assert framing.end() == theirs
    assert goes_on is (connection.our_state is h11.DONE)
