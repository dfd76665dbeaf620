"""Same-origin WebSocket handshakes by default (cross-site WebSocket hijacking is refused).

Browsers send cookies with cross-site handshakes, so the default only lets in pages this
server served: an ``Origin`` equal to the request's own scheme, host and port.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator

import pytest
import trustme

from spikard import HandshakeRejected, Spikard, WebSocket, WebSocketConfig, WebSocketMessage
from spikard.protocol.origins import OriginMatcher

pytestmark = pytest.mark.anyio


def echo_app(**config: object) -> Spikard:
    app = Spikard(websocket=WebSocketConfig(**config))  # type: ignore[arg-type]

    @app.websocket("/echo")
    async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
        async for message in socket:
            yield message

    return app


async def status_for(app: Spikard, origin: str | None, **tls: object) -> int:
    async with app.test_server(**tls) as server:  # type: ignore[arg-type]
        own = server.url
        headers = {} if origin is None else {"origin": origin.replace("{own}", own)}
        try:
            async with server.connect("/echo", headers=headers) as ws:
                await ws.send("hi")
                assert await ws.receive_text() == "hi"
        except HandshakeRejected as refused:
            return refused.status_code
    return 101


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        (None, 101),  # not a browser
        ("{own}", 101),  # a page this server served
        ("{own}/", 101),
        ("https://evil.example", 403),
        ("http://127.0.0.1:1", 403),  # same host, another port
        ("null", 403),  # sandboxed frames, file: pages
    ],
)
async def test_the_default_allows_only_the_same_origin(origin: str | None, status: int) -> None:
    assert await status_for(echo_app(), origin) == status


async def test_a_refusal_is_logged_once_naming_the_origin_and_the_setting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="spikard.http"):
        assert await status_for(echo_app(), "https://evil.example") == 403
    lines = [r.getMessage() for r in caplog.records if "evil.example" in r.getMessage()]
    assert len(lines) == 1
    assert "allowed_origins" in lines[0]


async def test_wss_matches_https() -> None:
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    app = echo_app()
    assert await status_for(app, "{own}", ssl_context=context) == 101
    async with app.test_server(ssl_context=context) as server:
        http_twin = server.url.replace("https://", "http://")
        with pytest.raises(HandshakeRejected) as refused:
            async with server.connect("/echo", headers={"origin": http_twin}):
                pass
        assert refused.value.status_code == 403


@pytest.mark.parametrize("setting", ["*", ("*",)])
async def test_star_allows_any_origin(setting: str | tuple[str, ...]) -> None:
    app = echo_app(allowed_origins=setting)
    assert await status_for(app, "https://evil.example") == 101
    assert await status_for(app, "null") == 101


async def test_a_list_may_name_same_origin_beside_other_origins() -> None:
    app = echo_app(allowed_origins=("same-origin", "https://*.example.com"))
    assert await status_for(app, "{own}") == 101
    assert await status_for(app, "https://app.example.com") == 101
    assert await status_for(app, "https://example.org") == 403
    only_listed = echo_app(allowed_origins=("https://app.example.com",))
    assert await status_for(only_listed, "{own}") == 403


async def test_none_is_a_deprecated_alias_of_star() -> None:
    with pytest.warns(DeprecationWarning, match="allowed_origins"):
        config = WebSocketConfig(allowed_origins=None)
    assert config.allowed_origins == "*"


def test_unknown_keywords_are_refused() -> None:
    with pytest.raises(ValueError, match="same-origin"):
        WebSocketConfig(allowed_origins="self")


def test_default_ports_are_normalized_for_same_origin() -> None:
    same = OriginMatcher(("same-origin",))
    assert same("http://example.com", "http://example.com:80")
    assert same("https://example.com:443", "https://example.com")
    assert same("HTTP://Example.COM", "http://example.com")
    assert not same("http://example.com", "https://example.com")
    assert not same("http://example.com", None)
