"""``max_body_size=`` on a route: raised and lowered against ``HTTPConfig.max_body_size``."""

from __future__ import annotations

import http.client

import anyio
import pytest

from spikard import HTTPConfig, Request, RoutingError, Spikard


def post(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", path, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    except (ConnectionError, http.client.HTTPException):
        return -1, b""
    finally:
        connection.close()


app = Spikard(http=HTTPConfig(max_body_size=1000))


@app.post("/default")
async def default(request: Request) -> str:
    return str(len(await request.body()))


@app.post("/big", max_body_size=200_000)
async def big(request: Request) -> str:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return str(size)


@app.route("/small", methods=("POST", "PUT"), max_body_size=10)
async def small(request: Request) -> str:
    return str(len(await request.body()))


@pytest.mark.parametrize(
    ("path", "size", "expected"),
    [
        ("/default", 1000, (200, b"1000")),
        ("/default", 1001, (413, b"Content Too Large")),
        ("/big", 150_000, (200, b"150000")),
        ("/big", 200_001, (413, b"Content Too Large")),
        ("/small", 10, (200, b"10")),
        ("/small", 11, (413, b"Content Too Large")),
    ],
)
async def test_a_route_limit_replaces_the_app_limit(
    path: str, size: int, expected: tuple[int, bytes]
) -> None:
    async with app.test_server() as server:
        status, body = await anyio.to_thread.run_sync(post, server.port, path, b"x" * size)
    assert status == expected[0]
    assert body.startswith(expected[1])


@pytest.mark.parametrize("limit", [0, -1, 1.5, True, "10"])
def test_a_route_limit_must_be_a_positive_int(limit: object) -> None:
    with pytest.raises(RoutingError, match="max_body_size must be a positive int"):
        Spikard().post("/x", max_body_size=limit)(lambda: "x")  # type: ignore[arg-type]
