from __future__ import annotations

from collections.abc import Iterator

import pytest

from .servers import Served, serve

APP = "tests.asgi_hosted.apps:app"


@pytest.fixture(scope="session")
def uvicorn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The test app under uvicorn (its default WebSocket implementation)."""
    with serve("uvicorn", APP, tmp_path_factory.mktemp("uvicorn")) as served:
        yield served


@pytest.fixture(scope="session")
def hypercorn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve("hypercorn", APP, tmp_path_factory.mktemp("hypercorn")) as served:
        yield served


@pytest.fixture(scope="session")
def hypercorn_trio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The test app under hypercorn's trio worker: the app's own tasks run on trio."""
    with serve("hypercorn-trio", APP, tmp_path_factory.mktemp("hypercorn-trio")) as served:
        yield served


@pytest.fixture(scope="session")
def granian_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve("granian", APP, tmp_path_factory.mktemp("granian")) as served:
        yield served


@pytest.fixture(scope="session")
def wsproto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The test app under uvicorn with ``--ws wsproto``."""
    with serve("uvicorn-wsproto", APP, tmp_path_factory.mktemp("wsproto")) as served:
        yield served


@pytest.fixture(scope="session")
def legacy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The test app under uvicorn with ``--ws websockets`` (its older implementation)."""
    with serve("uvicorn-websockets", APP, tmp_path_factory.mktemp("legacy")) as served:
        yield served


@pytest.fixture(params=["uvicorn", "hypercorn", "hypercorn_trio", "granian"])
def any_server(request: pytest.FixtureRequest) -> Served:
    """Each server in turn, for the tests every server must pass."""
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def starlette_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """uvicorn serving a Starlette app that mounts the test app at /rt."""
    target = "tests.asgi_hosted.apps:starlette_host"
    with serve("uvicorn", target, tmp_path_factory.mktemp("starlette"), factory=True) as served:
        yield served


@pytest.fixture(scope="session")
def fastapi_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """uvicorn serving a FastAPI app that mounts the test app at /rt."""
    target = "tests.asgi_hosted.apps:fastapi_host"
    with serve("uvicorn", target, tmp_path_factory.mktemp("fastapi"), factory=True) as served:
        yield served
