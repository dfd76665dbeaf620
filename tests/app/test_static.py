"""StaticFiles over real loopback sockets: serving, html mode, and never a byte from outside.

The tree has secrets next to the served directory (``secret.txt``, and a sibling directory
whose name starts with the served one's), symlinks pointing out and in, and hidden files.
Nasty request targets are written raw, so no client normalizes them first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikard import Request, Response, RoutingError, Spikard
from spikard.files import StaticFiles
from spikard.testing.server import TestServerInfo

from .test_files import Reply, connect, fetch

pytestmark = pytest.mark.anyio

SECRET = b"TOP SECRET: next to the directory\n"
PREFIX_SECRET = b"SECRET in a sibling that shares the directory's name as a prefix\n"
HELLO = b"hello from public\n"
INDEX = b"<h1>index</h1>\n"
SUB_INDEX = b"<h1>sub</h1>\n"
NOT_FOUND_PAGE = b"<h1>no such page</h1>\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/{secret.txt, publicsecret/secret.txt, public/...}; returns ``public``."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "publicsecret").mkdir()
    (tmp_path / "publicsecret" / "secret.txt").write_bytes(PREFIX_SECRET)
    public = tmp_path / "public"
    public.mkdir()
    (public / "hello.txt").write_bytes(HELLO)
    (public / "with space.txt").write_bytes(b"spaced\n")
    (public / "index.html").write_bytes(INDEX)
    (public / "404.html").write_bytes(NOT_FOUND_PAGE)
    (public / ".hidden").write_bytes(b"hidden\n")
    (public / ".well-known").mkdir()
    (public / ".well-known" / "security.txt").write_bytes(b"Contact: x\n")
    (public / "sub").mkdir()
    (public / "sub" / "index.html").write_bytes(SUB_INDEX)
    (public / "sub" / "page.txt").write_bytes(b"sub page\n")
    (public / "sub" / ".git").mkdir()
    (public / "sub" / ".git" / "config").write_bytes(b"[core]\n")
    (public / "noindex").mkdir()
    (public / "noindex" / "file.txt").write_bytes(b"in noindex\n")
    (public / "link-out").symlink_to(tmp_path / "secret.txt")
    (public / "link-prefix").symlink_to(Path("..") / "publicsecret" / "secret.txt")
    (public / "dir-out").symlink_to(tmp_path / "publicsecret", target_is_directory=True)
    (public / "link-in").symlink_to("hello.txt")
    (public / "sub" / "link-up").symlink_to(Path("..") / "hello.txt")
    return public


def make_app(directory: Path, **options: bool) -> Spikard:
    """``/static/`` serves ``directory`` plainly and ``/site/`` in html mode."""
    app = Spikard()
    app.add_route("/static/{path:path}", StaticFiles(directory, **options), ("GET",))
    app.add_route("/site/{path:path}", StaticFiles(directory, html=True, **options), ("GET",))
    return app


@pytest.fixture
def app(tree: Path) -> Spikard:
    return make_app(tree)


def assert_no_secret(reply: Reply) -> None:
    assert b"SECRET" not in reply.body


# ---- serving ---------------------------------------------------------------------------------


async def test_files_are_served_with_type_length_and_validators(app: Spikard) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        hello = await client.request("GET", "/static/hello.txt")
        nested = await client.request("GET", "/static/sub/page.txt")
        spaced = await client.request("GET", "/static/with%20space.txt")
        encoded_dot = await client.request("GET", "/static/hello%2etxt")  # not a dot segment
    assert (hello.status, hello.body) == (200, HELLO)
    assert hello.headers["content-type"] == "text/plain; charset=utf-8"
    assert hello.headers["content-length"] == str(len(HELLO))
    assert "etag" in hello.headers
    assert "last-modified" in hello.headers
    assert (nested.status, nested.body) == (200, b"sub page\n")
    assert (spaced.status, spaced.body) == (200, b"spaced\n")
    assert (encoded_dot.status, encoded_dot.body) == (200, HELLO)


async def test_head_gets_the_head(app: Spikard) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        head = await client.request("HEAD", "/static/hello.txt")
        get = await client.request("GET", "/static/hello.txt")
    assert (head.status, head.body) == (200, b"")
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["etag"] == get.headers["etag"]


async def test_conditional_and_range_requests_work_and_keep_the_connection(
    app: Spikard,
) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        etag = (await client.request("GET", "/static/hello.txt")).headers["etag"]
        cached = await client.request("GET", "/static/hello.txt", [("If-None-Match", etag)])
        after_304 = await client.request("GET", "/static/sub/page.txt")
        partial = await client.request("GET", "/static/hello.txt", [("Range", "bytes=0-4")])
        after_206 = await client.request("GET", "/static/hello.txt")
    assert cached.status == 304
    assert cached.body == b""
    assert (after_304.status, after_304.body) == (200, b"sub page\n")
    assert (partial.status, partial.body) == (206, HELLO[:5])
    assert partial.headers["content-range"] == f"bytes 0-4/{len(HELLO)}"
    assert (after_206.status, after_206.body) == (200, HELLO)


async def test_headers_a_middleware_adds_reach_every_answer(tree: Path) -> None:
    app = make_app(tree)

    @app.middleware
    async def allow_any_origin(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers["access-control-allow-origin"] = "*"
        return response

    async with app.test_server() as server, connect(server.port) as client:
        full = await client.request("GET", "/static/hello.txt")
        etag = full.headers["etag"]
        answers = [
            full,
            await client.request("GET", "/static/hello.txt", [("If-None-Match", etag)]),
            await client.request("GET", "/static/hello.txt", [("Range", "bytes=0-0")]),
            await client.request("GET", "/static/hello.txt", [("Range", "bytes=0-0,2-2")]),
            await client.request("GET", "/static/hello.txt", [("Range", "bytes=99-")]),
            await client.request("GET", "/static/hello.txt", [("If-Match", '"x"')]),
            await client.request("GET", "/static/missing.txt"),
            await client.request("GET", "/site/sub"),
        ]
    assert [reply.status for reply in answers] == [200, 304, 206, 206, 416, 412, 404, 307]
    for reply in answers:
        assert reply.headers["access-control-allow-origin"] == "*", reply.status


@pytest.mark.parametrize(
    "target",
    [
        "/static/missing.txt",
        "/static/",  # a directory: never listed
        "/static/sub",
        "/static/sub/",
        "/static/hello.txt/",  # a file is not a directory
        "/static/hello.txt/x",
        "/static/noindex/",
    ],
)
async def test_what_is_not_a_file_is_404(app: Spikard, target: str) -> None:
    async with app.test_server() as server:
        reply = await fetch(server.port, target)
    assert reply.status == 404
    assert reply.body == b"Not Found"


async def test_a_file_deleted_after_registration_is_404(app: Spikard, tree: Path) -> None:
    async with app.test_server() as server:
        (tree / "hello.txt").unlink()
        reply = await fetch(server.port, "/static/hello.txt")
    assert reply.status == 404


async def test_an_unreadable_file_is_a_500_not_a_404(
    app: Spikard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stood in for the permission check (root reads every file)."""
    from spikard import files

    monkeypatch.setattr(files, "_readable", lambda path: not path.endswith("hello.txt"))
    async with app.test_server() as server:
        reply = await fetch(server.port, "/static/hello.txt")
    assert reply.status == 500
    assert HELLO not in reply.body


def test_a_missing_directory_is_refused_at_construction(tmp_path: Path) -> None:
    with pytest.raises(RoutingError, match="does not exist"):
        StaticFiles(tmp_path / "nowhere")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(RoutingError, match="not a directory"):
        StaticFiles(tmp_path / "file")


async def test_without_check_dir_the_directory_may_come_later(tmp_path: Path) -> None:
    later = tmp_path / "later"
    app = Spikard()
    app.add_route("/static/{path:path}", StaticFiles(later, check_dir=False), ("GET",))
    async with app.test_server() as server:
        before = await fetch(server.port, "/static/a.txt")
        later.mkdir()
        (later / "a.txt").write_bytes(b"now\n")
        after = await fetch(server.port, "/static/a.txt")
    assert before.status == 404
    assert (after.status, after.body) == (200, b"now\n")


async def test_the_directory_may_be_a_symlink_switched_between_requests(tmp_path: Path) -> None:
    for release in ("v1", "v2"):
        (tmp_path / release).mkdir()
        (tmp_path / release / "app.js").write_text(f"// {release}\n")
    current = tmp_path / "current"
    current.symlink_to("v1")
    app = Spikard()
    app.add_route("/static/{path:path}", StaticFiles(current), ("GET",))
    async with app.test_server() as server:
        first = await fetch(server.port, "/static/app.js")
        current.unlink()
        current.symlink_to("v2")
        second = await fetch(server.port, "/static/app.js")
    assert first.body == b"// v1\n"
    assert second.body == b"// v2\n"


# ---- hidden files and symlinks --------------------------------------------------------------


@pytest.mark.parametrize("target", ["/static/.hidden", "/static/sub/.git/config", "/static/.git"])
async def test_hidden_files_are_not_served(app: Spikard, target: str) -> None:
    async with app.test_server() as server:
        reply = await fetch(server.port, target)
    assert reply.status == 404


async def test_well_known_is_served(app: Spikard) -> None:
    async with app.test_server() as server:
        reply = await fetch(server.port, "/static/.well-known/security.txt")
    assert (reply.status, reply.body) == (200, b"Contact: x\n")


@pytest.mark.parametrize(
    "target", ["/static/link-out", "/static/link-prefix", "/static/dir-out/secret.txt"]
)
async def test_symlinks_out_of_the_directory_are_404_by_default(app: Spikard, target: str) -> None:
    async with app.test_server() as server:
        reply = await fetch(server.port, target)
    assert reply.status == 404
    assert_no_secret(reply)


@pytest.mark.parametrize(
    ("target", "content"),
    [
        ("/static/link-out", SECRET),
        ("/static/link-prefix", PREFIX_SECRET),
        ("/static/dir-out/secret.txt", PREFIX_SECRET),
    ],
)
async def test_follow_symlinks_serves_them(tree: Path, target: str, content: bytes) -> None:
    app = make_app(tree, follow_symlinks=True)
    async with app.test_server() as server:
        reply = await fetch(server.port, target)
    assert (reply.status, reply.body) == (200, content)


@pytest.mark.parametrize("follow_symlinks", [False, True])
async def test_symlinks_inside_are_served_either_way(tree: Path, follow_symlinks: bool) -> None:
    app = make_app(tree, follow_symlinks=follow_symlinks)
    async with app.test_server() as server, connect(server.port) as client:
        link_in = await client.request("GET", "/static/link-in")
        link_up = await client.request("GET", "/static/sub/link-up")
        traversal = await client.request("GET", "/static/sub/../link-out")
    assert (link_in.status, link_in.body) == (200, HELLO)
    assert (link_up.status, link_up.body) == (200, HELLO)
    assert traversal.status == 404  # following symlinks never allows ".."


# ---- html mode -------------------------------------------------------------------------------


async def test_html_mode_serves_index_files(app: Spikard) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        root = await client.request("GET", "/site/")
        sub = await client.request("GET", "/site/sub/")
        page = await client.request("GET", "/site/sub/page.txt")
    assert (root.status, root.body) == (200, INDEX)
    assert root.headers["content-type"] == "text/html; charset=utf-8"
    assert (sub.status, sub.body) == (200, SUB_INDEX)
    assert (page.status, page.body) == (200, b"sub page\n")


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/site/sub", "/site/sub/"),
        ("/site/sub?a=1&b=%20", "/site/sub/?a=1&b=%20"),
        ("/site/s%75b", "/site/s%75b/"),  # the target as sent, still encoded
    ],
)
async def test_html_mode_redirects_a_directory_to_its_slash(
    app: Spikard, target: str, location: str
) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        reply = await client.request("GET", target)
        head = await client.request("HEAD", target)
    assert reply.status == 307
    assert reply.headers["location"] == location
    assert (head.status, head.headers["location"]) == (307, location)


@pytest.mark.parametrize(
    "target",
    [
        "/site/missing.html",
        "/site/noindex",  # a directory without index.html: no redirect to nothing
        "/site/noindex/",
        "/site/hello.txt/",
        "/site/.hidden",  # refused paths look exactly like missing ones
        "/site/%2e%2e/secret.txt",
        "/site/link-out",
    ],
)
async def test_html_mode_answers_missing_files_with_404_html(app: Spikard, target: str) -> None:
    async with app.test_server() as server:
        reply = await fetch(server.port, target)
    assert reply.status == 404
    assert reply.body == NOT_FOUND_PAGE
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert "etag" not in reply.headers


async def test_html_mode_without_404_html_answers_plain_404(tree: Path) -> None:
    (tree / "404.html").unlink()
    app = make_app(tree)
    async with app.test_server() as server:
        reply = await fetch(server.port, "/site/missing.html")
    assert (reply.status, reply.body) == (404, b"Not Found")


# ---- traversal -------------------------------------------------------------------------------

TRAVERSALS = [
    "/static/../secret.txt",
    "/static/../publicsecret/secret.txt",
    "/static/%2e%2e/secret.txt",
    "/static/%2E%2E/secret.txt",
    "/static/.%2e/secret.txt",
    "/static/%2e./secret.txt",
    "/static/..%2fsecret.txt",
    "/static/..%2Fsecret.txt",
    "/static/%2e%2e%2fsecret.txt",
    "/static/sub/..%2f..%2fsecret.txt",
    "/static/%252e%252e/secret.txt",  # double encoding: decoded once, never twice
    "/static/%252e%252e%252fsecret.txt",
    "/static/..\\secret.txt",
    "/static/..%5csecret.txt",
    "/static/..%5Csecret.txt",
    "/static/sub\\..\\..\\secret.txt",
    "/static/sub/../../secret.txt",
    "/static/./../secret.txt",
    "/static/sub/%2e%2e/%2e%2e/secret.txt",
    "/static//{secret}",  # an absolute path would replace the directory in a join
    "/static/%2f{secret}",
    "/static/{secret}",
    "/static/%00../secret.txt",
    "/static/..%00/secret.txt",
    "/static/hello.txt%00.html",
    "/static/%c0%ae%c0%ae/secret.txt",  # overlong UTF-8 for "."
    "/static/..;/secret.txt",
    "/static/...//secret.txt",
    "/static/C:/secret.txt",
    "/static/c:%5csecret.txt",
    "/static/sub//../../secret.txt",
    "/static/link-out",
    "/static/dir-out/secret.txt",
    "/static/..",
    "/static/%2e%2e",
    "/static/sub%2fpage.txt",  # an encoded slash is refused even when it leads nowhere bad
    "/static/sub%5cpage.txt",
]


SYMLINKS_OUT = frozenset({"/static/link-out", "/static/dir-out/secret.txt"})


@pytest.mark.parametrize("raw", TRAVERSALS)
@pytest.mark.parametrize("prefix", ["/static/", "/site/"])
@pytest.mark.parametrize("follow_symlinks", [False, True])
async def test_traversal_attempts_are_404(
    tree: Path, raw: str, prefix: str, follow_symlinks: bool
) -> None:
    """With ``follow_symlinks`` the path checks are the only defence: no resolved-path check."""
    if follow_symlinks and raw in SYMLINKS_OUT:
        pytest.skip("served on purpose with follow_symlinks")
    app = make_app(tree, follow_symlinks=follow_symlinks)
    target = prefix + raw.removeprefix("/static/").format(secret=tree.parent / "secret.txt")
    async with app.test_server() as server, connect(server.port) as client:
        reply = await client.request("GET", target)
        control = await client.request("GET", prefix + "hello.txt")  # the same connection
    assert reply.status == 404, target
    assert_no_secret(reply)
    assert (control.status, control.body) == (200, HELLO)


PIECES = [
    "..",
    ".",
    "/",
    "//",
    "%2e",
    "%2E",
    "%2f",
    "%2F",
    "%5c",
    "\\",
    "%00",
    "%25",
    "%252e",
    "%c0%ae",
    ";",
    "C:",
    "~",
    "secret.txt",
    "public",
    "publicsecret",
    "hello.txt",
    "sub",
    "link-out",
    "link-prefix",
    "dir-out",
    "link-in",
    ".hidden",
    ".well-known",
    "index.html",
]


@pytest.fixture
def inside(tree: Path) -> set[bytes]:
    """The contents of every file really inside the directory."""
    root = tree.resolve()
    return {
        path.read_bytes()
        for path in tree.rglob("*")
        if path.is_file() and root in path.resolve().parents
    }


@pytest.fixture
async def served(tree: Path) -> AsyncIterator[TestServerInfo]:
    async with make_app(tree).test_server() as server:
        yield server


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    prefix=st.sampled_from(["/static/", "/site/"]),
    pieces=st.lists(
        st.sampled_from(PIECES) | st.text(alphabet="./\\%25cefF:", max_size=4), max_size=10
    ),
)
async def test_no_generated_path_reaches_outside(
    served: TestServerInfo, inside: set[bytes], prefix: str, pieces: list[str]
) -> None:
    """Whatever the path, a 200 carries one of the directory's own files."""
    reply = await fetch(served.port, prefix + "".join(pieces))
    assert_no_secret(reply)
    assert reply.status in (200, 307, 400, 404)
    if reply.status == 200:
        assert reply.body in inside
