"""``app.static``: registration, the bare prefix, middleware seeing the final file answer."""

from __future__ import annotations

import http.client
from pathlib import Path

import anyio
import pytest
from examples import chat

from spikard import FileResponse, Request, Response, RoutingError, Spikard
from spikard.app.middleware import CallNext


def fetch(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.msg, response.read()
    finally:
        connection.close()


async def get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    return await anyio.to_thread.run_sync(fetch, port, path, headers)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<p>home</p>")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.html").write_text("<p>docs</p>")
    (tmp_path / "style.css").write_text("p { color: red }")
    return tmp_path


async def test_static_serves_under_a_prefix_and_redirects_the_bare_prefix(site: Path) -> None:
    app = Spikard()
    app.static("/site", site, html=True)
    app.static("/raw", site)
    async with app.test_server() as server:
        bare = await get(server.port, "/site?lang=en")
        home = await get(server.port, "/site/")
        css = await get(server.port, "/site/style.css")
        docs = await get(server.port, "/site/docs")
        raw_dir = await get(server.port, "/raw/")
        raw_file = await get(server.port, "/raw/style.css")
    assert (bare[0], bare[1]["location"]) == (307, "/site/?lang=en")
    assert (home[0], home[2]) == (200, b"<p>home</p>")
    assert css[1]["content-type"] == "text/css; charset=utf-8"
    assert (docs[0], docs[1]["location"]) == (307, "/site/docs/")
    assert raw_dir[0] == 404  # no html mode: directories are not served
    assert raw_file[2] == b"p { color: red }"


def test_static_needs_an_existing_directory(tmp_path: Path) -> None:
    with pytest.raises(RoutingError, match="does not exist"):
        Spikard().static("/x", tmp_path / "missing")


async def test_routes_registered_first_win_over_a_root_static(site: Path) -> None:
    app = Spikard()

    @app.get("/api")
    async def api(request: Request) -> dict[str, bool]:
        return {"api": True}

    app.static("/", site, html=True)
    async with app.test_server() as server:
        assert (await get(server.port, "/api"))[2] == b'{"api":true}'
        assert (await get(server.port, "/"))[2] == b"<p>home</p>"


async def test_middleware_sees_the_final_status_of_a_file_response(site: Path) -> None:
    app = Spikard()
    seen: list[int] = []

    @app.middleware
    async def record(request: Request, call_next: CallNext) -> Response:
        response = await call_next(request)
        seen.append(response.status_code)
        response.headers["x-seen"] = "yes"
        return response

    @app.get("/file")
    async def file(request: Request) -> FileResponse:
        return FileResponse(site / "style.css")

    async with app.test_server() as server:
        first = await get(server.port, "/file")
        again = await get(server.port, "/file", {"If-None-Match": first[1]["etag"]})
        part = await get(server.port, "/file", {"Range": "bytes=0-0"})
    assert [first[0], again[0], part[0]] == [200, 304, 206]
    assert seen == [200, 304, 206]
    assert again[1]["x-seen"] == "yes"
    assert part[2] == b"p"


async def test_the_chat_example_serves_its_page_from_disk() -> None:
    page = (Path(chat.__file__).parent / "chat_static" / "index.html").read_bytes()
    async with chat.app.test_server() as server:
        status, headers, body = await get(server.port, "/")
        rooms = await get(server.port, "/rooms")
    assert status == 200
    assert body == page
    assert b"new WebSocket" in body
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "etag" in headers
    assert rooms[0] == 200
