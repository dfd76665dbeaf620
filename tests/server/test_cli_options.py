"""The command line itself: its name, ``--version``, help text, what it agrees to serve."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

import spikard
from spikard.server.cli import build_asyncapi_parser, build_parser, check_app

from ..asyncapi.checks import assert_valid
from . import APP, ROOT, spikard_command


def run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )


def test_version() -> None:
    result = run(*spikard_command("--version"))
    assert result.returncode == 0
    assert (
        result.stdout.strip() == f"spikard {spikard.__version__} (the spikard-stream distribution)"
    )


def test_the_installed_script_names_itself_spikard() -> None:
    script = Path(sys.executable).with_name("spikard")
    if not script.exists():
        pytest.skip("the spikard script is not installed next to this interpreter")
    result = run(str(script), "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: spikard ")
    assert run(str(script), "--version").stdout.startswith(f"spikard {spikard.__version__}")


def test_python_m_spikard_calls_itself_spikard_too() -> None:
    result = run(*spikard_command("--help"))
    assert result.returncode == 0
    assert result.stdout.startswith("usage: spikard ")
    assert "spikard asyncapi module:app" in result.stdout


@pytest.mark.parametrize("parser", [build_parser(), build_asyncapi_parser()])
def test_every_option_has_help_text(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:  # argparse has no public list of its arguments
        assert action.help, f"{action.option_strings or action.dest} has no help text"
        assert action.help != argparse.SUPPRESS


HINT = (
    "; point at a Spikard() instance, like 'examples.chat:app', or at an ASGI 3 app "
    "('async def app(scope, receive, send)')"
)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "async def app(scope, receive, send):\n    pass\n",
            "'target:app' is a plain ASGI application, not a spikard one; serve it with "
            "--interface asgi (or auto)",
        ),
        (
            "class App:\n    async def __call__(self, scope, receive, send):\n        pass\n"
            "app = App()\n",
            "'target:app' is a plain ASGI application, not a spikard one; serve it with "
            "--interface asgi (or auto)",
        ),
        (
            "def app(request):\n    return 'hello'\n",
            "'target:app' is not a spikard application (it is a function)" + HINT,
        ),
        (
            "from spikard import Spikard\napp = Spikard\n",
            "'target:app' is not a spikard application (it is a class)" + HINT,
        ),
    ],
    ids=["asgi-function", "asgi-object", "function", "the-class"],
)
def test_what_is_not_a_spikard_app_is_refused_in_one_line(
    tmp_path: Path, source: str, message: str
) -> None:
    (tmp_path / "target.py").write_text(source)
    # A plain ASGI app is served by default (--interface auto); --interface spikard refuses it.
    for mode in ((), ("--workers", "2")):
        command = spikard_command("target:app", "--port", "0", "--interface", "spikard", *mode)
        result = run(*command, cwd=tmp_path)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [f"error: {message}"]


def test_check_app_in_process() -> None:
    app = spikard.Spikard()
    assert check_app(app, "m:app") is app
    with pytest.raises(SystemExit, match="not a spikard application"):
        check_app(42, "m:app")


def test_a_certificate_that_cannot_be_loaded_is_one_line(tmp_path: Path) -> None:
    result = run(
        *spikard_command(APP, "--port", "0", "--ssl-certfile", str(tmp_path / "missing.pem"))
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot load the TLS certificate '{tmp_path / 'missing.pem'}': "
        "No such file or directory"
    ]


def test_a_key_without_a_certificate_is_refused() -> None:
    result = run(*spikard_command(APP, "--ssl-keyfile", "key.pem"))
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --ssl-keyfile needs --ssl-certfile"


ASYNCAPI_APP = """\
from typing import Any

from spikard import Spikard


class DocumentedApp(Spikard):
    def asyncapi(self) -> dict[str, Any]:
        return {"asyncapi": "3.0.0", "info": {"title": "chat", "version": "1"}}


app = DocumentedApp()
"""


def test_the_asyncapi_command_prints_the_document_as_json(tmp_path: Path) -> None:
    (tmp_path / "documented.py").write_text(ASYNCAPI_APP)
    result = run(*spikard_command("asyncapi", "documented:app"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "asyncapi": "3.0.0",
        "info": {"title": "chat", "version": "1"},
    }
    assert result.stdout.startswith('{\n  "asyncapi"')  # indent=2


def test_the_asyncapi_command_refuses_what_is_not_an_app(tmp_path: Path) -> None:
    result = run(*spikard_command("asyncapi", "tests.server.app_for_cli:NOT_AN_APP"))
    assert result.returncode == 1
    assert "is not a spikard application" in result.stderr
    usage = run(*spikard_command("asyncapi"))
    assert usage.returncode == 2
    assert usage.stderr.startswith("usage: spikard asyncapi ")


def test_a_key_that_does_not_match_the_certificate_is_one_line(tmp_path: Path) -> None:
    authority = trustme.CA()
    certificate, other = authority.issue_cert("127.0.0.1"), authority.issue_cert("127.0.0.1")
    certificate.cert_chain_pems[0].write_to_path(str(tmp_path / "server.crt"))
    other.private_key_pem.write_to_path(str(tmp_path / "other.key"))
    result = run(
        *spikard_command(
            APP,
            "--ssl-certfile",
            str(tmp_path / "server.crt"),
            "--ssl-keyfile",
            str(tmp_path / "other.key"),
        )
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot load the TLS certificate '{tmp_path / 'server.crt'}': ")
    assert "KEY_VALUES_MISMATCH" in line


ROOMS_APP = """\
from collections.abc import AsyncIterator

from spikard import Spikard, WebSocket, WebSocketMessage

app = Spikard()


@app.websocket("/rooms/{room}")
async def room(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    async for message in socket:
        yield message
"""


def test_the_asyncapi_command_on_a_real_app(tmp_path: Path) -> None:
    (tmp_path / "rooms.py").write_text(ROOMS_APP)
    result = run(
        *spikard_command(
            "asyncapi",
            "rooms:app",
            "--title",
            "Rooms",
            "--api-version",
            "2.1.0",
            "--description",
            "chat rooms",
            "--server",
            "production=wss://chat.example.com",
        ),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert_valid(document)
    assert document["info"] == {"title": "Rooms", "version": "2.1.0", "description": "chat rooms"}
    assert list(document["servers"]) == ["production"]
    assert [channel["address"] for channel in document["channels"].values()] == ["/rooms/{room}"]


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("production", "error: --server expects NAME=URL, got 'production'"),
        ("production=chat.example.com", "error: cannot build the AsyncAPI document: "),
    ],
)
def test_the_asyncapi_command_refuses_a_bad_server_in_one_line(
    tmp_path: Path, server: str, message: str
) -> None:
    (tmp_path / "rooms.py").write_text(ROOMS_APP)
    result = run(*spikard_command("asyncapi", "rooms:app", "--server", server), cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(message)
