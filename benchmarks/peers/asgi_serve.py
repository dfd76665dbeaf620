"""One of ``benchmarks.asgi_bench``'s servers running one of ``asgi_apps``' apps.

``python -m benchmarks.peers.asgi_serve --port P --server S --app A``, where ``S`` is

- ``spikard``: spikard's CLI, ``python -m spikard benchmarks.peers.asgi_apps:<app>``
  (exec'd, so the process measured is the server); a Starlette app goes through
  ``spikard.asgi.serving.ASGIApplication``, the spikard app is served natively;
- ``uvicorn-wsproto`` / ``uvicorn-websockets-sansio``: ``uvicorn.run`` with ``http="h11"``
  and that WebSocket implementation (``websockets-sansio`` is what uvicorn's default
  ``--ws auto`` picks when websockets is installed), on uvloop;
- ``granian``: ``granian --interface asgi`` (exec'd; one worker process, which the harness
  measures instead of the supervisor).

Every server logs at WARNING without an access log, accepts messages up to
:data:`~benchmarks.peers.MAX_MESSAGE` and does not offer permessage-deflate. The Starlette app
runs without lifespan; the spikard app needs its lifespan (it refuses requests without it).
"""

from __future__ import annotations

import argparse
import os
import sys

from . import MAX_MESSAGE, check_spikard_source

APPS = {"starlette": "starlette_app", "spikard": "spikard_app"}
SERVERS = ("spikard", "uvicorn-wsproto", "uvicorn-websockets-sansio", "granian")


def _target(app: str) -> str:
    return f"benchmarks.peers.asgi_apps:{APPS[app]}"


def spikard_command(host: str, port: int, app: str) -> list[str]:
    """The ``python -m spikard`` command line serving ``app``."""
    command = [sys.executable, "-m", "spikard", _target(app), "--host", host, "--port", str(port)]
    command += ["--log-level", "warning"]
    if app == "starlette":
        # Plain ASGI apps have no per-client limits unless asked; these match uvicorn's peers.
        command += ["--lifespan", "off", "--ws-max-size", str(MAX_MESSAGE)]
        command += ["--ws-per-message-deflate", "false"]
    return command


def granian_command(host: str, port: int, app: str) -> list[str]:
    """The ``granian --interface asgi`` command line serving ``app``."""
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--log-level",
        "warning",
        "--no-access-log",
        "--backlog",
        "4096",
        _target(app),
    ]


def serve_uvicorn(host: str, port: int, app: str, ws: str) -> None:
    import uvicorn

    from . import asgi_apps

    uvicorn.run(
        getattr(asgi_apps, APPS[app]),
        host=host,
        port=port,
        loop="uvloop",
        http="h11",
        ws=ws,
        ws_max_size=MAX_MESSAGE,
        ws_per_message_deflate=False,
        lifespan="on" if app == "spikard" else "off",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )


def main() -> None:
    check_spikard_source()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server", choices=SERVERS, required=True)
    parser.add_argument("--app", choices=tuple(APPS), default="starlette")
    args = parser.parse_args()
    if args.server == "spikard":
        command = spikard_command(args.host, args.port, args.app)
    elif args.server == "granian":
        command = granian_command(args.host, args.port, args.app)
    else:
        serve_uvicorn(args.host, args.port, args.app, args.server.removeprefix("uvicorn-"))
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
