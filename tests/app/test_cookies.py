"""Multi-valued response headers and cookies: two Set-Cookie fields reach the client as two."""

from __future__ import annotations

import http.client
from datetime import datetime, timedelta, timezone
from http.cookies import SimpleCookie

import anyio
import pytest

from spikard import JSONResponse, PlainTextResponse, Request, Response, Spikard
from spikard.datastructures import MutableHeaders

app = Spikard()


@app.get("/login")
async def login(request: Request) -> Response:
    response = PlainTextResponse("welcome", headers=[("vary", "origin"), ("vary", "cookie")])
    response.set_cookie("session", "abc123", httponly=True, secure=True, max_age=3600)
    response.set_cookie("theme", "dark mode; yes", samesite="strict")
    return response


@app.get("/logout")
async def logout(request: Request) -> Response:
    response = JSONResponse({"ok": True})
    response.delete_cookie("session")
    return response


def fetch(port: int, path: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


async def test_two_cookies_are_two_set_cookie_headers() -> None:
    async with app.test_server() as server:
        response = await anyio.to_thread.run_sync(fetch, server.port, "/login")
    fields = response.msg.get_all("set-cookie")
    assert fields is not None
    assert len(fields) == 2
    jar: SimpleCookie = SimpleCookie()
    for field in fields:
        jar.load(field)
    assert jar["session"].value == "abc123"
    assert jar["session"]["httponly"]
    assert jar["session"]["secure"]
    assert jar["session"]["max-age"] == "3600"
    assert jar["session"]["samesite"] == "Lax"
    assert jar["theme"].value == "dark mode; yes"  # quoted on the wire, intact after parsing
    assert jar["theme"]["samesite"] == "Strict"
    assert response.msg.get_all("vary") == ["origin", "cookie"]


async def test_delete_cookie_expires_it() -> None:
    async with app.test_server() as server:
        response = await anyio.to_thread.run_sync(fetch, server.port, "/logout")
    (field,) = response.msg.get_all("set-cookie") or []
    jar: SimpleCookie = SimpleCookie()
    jar.load(field)
    assert jar["session"]["max-age"] == "0"
    assert jar["session"]["expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"


def test_expires_is_sent_in_gmt() -> None:
    response = Response()
    moment = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    response.set_cookie("a", "1", expires=moment)
    assert "expires=Wed, 02 Jan 2030 01:04:05 GMT" in response.headers["set-cookie"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name"}, "cannot set cookie"),
        ({"name": "a", "samesite": "sometimes"}, "samesite must be"),
        ({"name": "a", "samesite": "none"}, "needs secure=True"),
        ({"name": "a", "expires": datetime(2030, 1, 1)}, "aware datetime"),
    ],
)
def test_cookie_mistakes_are_clear_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Response().set_cookie(**kwargs)  # type: ignore[arg-type]


def test_response_headers_keep_item_assignment_and_add_repeats() -> None:
    headers = MutableHeaders({"X-One": "1"})
    headers["x-two"] = "2"
    headers.append("X-Two", "2b")
    assert headers["X-ONE"] == "1"
    assert headers.getlist("x-two") == ["2", "2b"]
    assert dict(headers) == {"x-one": "1", "x-two": "2"}
    assert len(headers) == 2
    assert list(headers) == ["x-one", "x-two"]
    headers["x-two"] = "only"
    assert headers.multi_items() == [("x-one", "1"), ("x-two", "only")]
    del headers["x-one"]
    assert "x-one" not in headers
    with pytest.raises(KeyError):
        del headers["x-one"]
    assert headers == {"x-two": "only"}


def test_raw_headers_send_every_field_and_one_content_length() -> None:
    response = Response(b"abc", headers=[("link", "<a>"), ("link", "<b>"), ("content-length", "9")])
    assert response.raw_headers() == [
        (b"link", b"<a>"),
        (b"link", b"<b>"),
        (b"content-length", b"3"),
    ]
