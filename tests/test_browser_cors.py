"""A real browser calls an API on another origin through CORSMiddleware: preflight, credentials.

Headless Chromium loads a page from one spikard server and ``fetch``es from a second one (a
different port is a different origin). Skipped when no Chromium is installed.
"""

from __future__ import annotations

import json
import shutil

import anyio
import pytest

from spikard import CORSMiddleware, HTMLResponse, JSONResponse, Request, Response, Spikard
from tests.test_browser import chromium, open_page

pytestmark = [
    pytest.mark.parametrize("anyio_backend", ["asyncio"]),
    pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed"),
]


def page_app() -> Spikard:
    app = Spikard()

    @app.get("/")
    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>page</title><p>page</p>")

    return app


def api_app(page_origin: str) -> tuple[Spikard, list[str]]:
    app = Spikard()
    reached: list[str] = []
    app.middleware(
        CORSMiddleware(
            allow_origins=[page_origin],
            allow_methods=["GET", "PUT"],
            allow_headers=["x-token"],
            allow_credentials=True,
            expose_headers=["x-total"],
        )
    )

    @app.get("/login")
    async def login(request: Request) -> Response:
        reached.append("login")
        response = JSONResponse({"ok": True})
        response.set_cookie("session", "s3cret", httponly=True, samesite="lax")
        return response

    @app.route("/data", methods=("GET", "PUT"))
    async def data(request: Request) -> Response:
        reached.append(f"{request.method} {request.headers.get('x-token')}")
        body = {"session": request.cookies.get("session"), "method": request.method}
        return JSONResponse(body, headers={"x-total": "42", "x-hidden": "no"})

    return app, reached


FETCHES = """
(async () => {
  const api = %s;
  const results = {};
  const login = await fetch(api + "/login", {credentials: "include"});
  results.login = (await login.json()).ok;
  const got = await fetch(api + "/data", {credentials: "include"});
  results.get = await got.json();
  results.total = got.headers.get("x-total");
  results.hidden = got.headers.get("x-hidden");
  const put = await fetch(api + "/data", {
    method: "PUT", credentials: "include", headers: {"X-Token": "t1"}, body: "x"});
  results.put = await put.json();
  try {
    await fetch(api + "/data", {method: "PUT", headers: {"X-Other": "1"}});
    results.refused = false;
  } catch (error) {
    results.refused = error.name;
  }
  return JSON.stringify(results);
})()
"""


async def test_a_browser_page_calls_another_origin_with_credentials() -> None:
    async with page_app().test_server() as page:
        page_origin = f"http://127.0.0.1:{page.port}"
        api, reached = api_app(page_origin)
        async with api.test_server() as api_server:
            api_url = f"http://127.0.0.1:{api_server.port}"
            with chromium() as devtools, anyio.fail_after(30):
                async with open_page(devtools, page_origin + "/") as browser:
                    results = json.loads(await browser.evaluate(FETCHES % json.dumps(api_url)))
    assert results["login"] is True
    assert results["get"] == {"session": "s3cret", "method": "GET"}
    assert results["total"] == "42"  # exposed
    assert results["hidden"] is None  # not exposed
    assert results["put"] == {"session": "s3cret", "method": "PUT"}
    assert results["refused"] == "TypeError"  # the preflight refused X-Other
    # The refused PUT never reached the route; the allowed one came after its preflight.
    assert reached == ["login", "GET None", "PUT t1"]


async def test_a_page_from_an_origin_not_allowed_cannot_read() -> None:
    async with page_app().test_server() as page:
        api, reached = api_app("https://elsewhere.example")
        async with api.test_server() as api_server:
            api_url = f"http://127.0.0.1:{api_server.port}"
            script = f'fetch({json.dumps(api_url)} + "/data").then(r => "read", e => e.name)'
            with chromium() as devtools, anyio.fail_after(30):
                async with open_page(devtools, f"http://127.0.0.1:{page.port}/") as browser:
                    outcome = await browser.evaluate(script)
    assert outcome == "TypeError"
    assert reached == ["GET None"]  # a simple request runs; the browser withholds the answer
