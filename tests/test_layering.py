"""The sans-I/O layer stays sans-I/O: ``spikard.protocol`` never imports anyio (or any I/O).

Checked twice: statically, over the import statements of every module in the package, and
dynamically, by importing the package in a fresh interpreter where anyio, trio, sniffio and
asyncio cannot be imported. The parent package ``spikard`` re-exports the whole framework, so
the subprocess gives it a bare stand-in: what is tested is the protocol package and everything
it imports, not the convenience imports of ``spikard/__init__.py``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import tokenize
from pathlib import Path

import pytest

import spikard

PACKAGE_ROOT = Path(spikard.__file__).parent
PROTOCOL_DIR = PACKAGE_ROOT / "protocol"
FORBIDDEN = ("anyio", "trio", "sniffio", "asyncio", "socket", "selectors", "ssl")
PROTOCOL_MODULES = sorted(PROTOCOL_DIR.rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Absolute names of what ``path`` imports (relative imports resolved)."""
    module = ".".join(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                names.add(".".join([*base, node.module] if node.module else base))
            else:
                assert node.module is not None
                names.add(node.module)
    return names


def test_protocol_package_has_modules() -> None:
    names = {path.name for path in PROTOCOL_MODULES}
    assert {"__init__.py", "handshake.py", "websocket.py"} <= names


@pytest.mark.parametrize("path", PROTOCOL_MODULES, ids=lambda path: path.name)
def test_protocol_modules_import_no_io_library(path: Path) -> None:
    for name in imported_modules(path):
        top = name.split(".")[0]
        assert top not in FORBIDDEN, f"{path.name} imports {name}"
        if top == "spikard":
            # Inside the package, only the protocol layer and the plain value modules.
            assert name.startswith("spikard.protocol") or name in (
                "spikard.datastructures",
                "spikard.errors",
                "spikard.messages",
            ), f"{path.name} reaches up into {name}"


def test_protocol_code_never_names_anyio() -> None:
    """A grep over the code tokens (docstrings and comments may talk about anyio)."""
    for path in PROTOCOL_MODULES:
        with path.open("rb") as source:
            for token in tokenize.tokenize(source.readline):
                if token.type == tokenize.NAME and token.string in FORBIDDEN[:3]:
                    raise AssertionError(f"{path.name}:{token.start[0]}: {token.line.strip()}")


def test_protocol_imports_with_io_libraries_blocked() -> None:
    script = textwrap.dedent(
        f"""
        import importlib.abc
        import sys
        import types

        BLOCKED = {FORBIDDEN[:4]!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked import of {{name}}")
                return None

        for name in list(sys.modules):
            if name.split(".")[0] in BLOCKED:
                del sys.modules[name]
        sys.meta_path.insert(0, Block())

        # A bare parent package, so that spikard/__init__.py (the whole framework) is skipped.
        parent = types.ModuleType("spikard")
        parent.__path__ = [{str(PACKAGE_ROOT)!r}]
        sys.modules["spikard"] = parent

        import spikard.protocol
        import spikard.protocol.handshake
        import spikard.protocol.websocket

        loaded = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("ok", sorted(n for n in sys.modules if n.startswith("spikard")))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
    assert "spikard.protocol.websocket" in result.stdout


def test_protocol_still_works_without_io_libraries() -> None:
    """Not just importable: a handshake and a message round trip run with anyio blocked."""
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys, types

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("anyio", "trio", "sniffio"):
                    raise ImportError(name)
                return None

        sys.meta_path.insert(0, Block())
        parent = types.ModuleType("spikard")
        parent.__path__ = [{str(PACKAGE_ROOT)!r}]
        sys.modules["spikard"] = parent

        from spikard.datastructures import Headers
        from spikard.protocol.handshake import accept_response, read_offer
        from spikard.protocol.websocket import WebSocketProtocol

        offer = read_offer("GET", "1.1", Headers([
            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
        ]))
        assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in accept_response(offer)
        protocol = WebSocketProtocol(max_message_size=100)
        events = protocol.receive_data(bytes([0x81, 0x82, 1, 2, 3, 4, ord("h") ^ 1, ord("i") ^ 2]))
        assert [event.as_text() for event in events] == ["hi"], events
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# ---- the connection contract is the only way down -------------------------------------------

ABOVE_CONNECTION = sorted(
    path for folder in ("streams", "app") for path in (PACKAGE_ROOT / folder).rglob("*.py")
)
CONTRACT_MODULES = ("spikard.connection", "spikard.connection.contract", "spikard.connection.state")


@pytest.mark.parametrize(
    "path", ABOVE_CONNECTION, ids=lambda path: f"{path.parent.name}/{path.name}"
)
def test_layers_above_the_connection_use_only_the_contract(path: Path) -> None:
    for name in imported_modules(path):
        assert name.split(".")[0] not in ("asyncio", "trio", "sniffio", "uvloop"), (
            f"{path.name} asks which event loop runs ({name})"
        )
        if name.startswith("spikard.connection"):
            assert name in CONTRACT_MODULES, f"{path.name} reaches past the contract: {name}"


@pytest.mark.parametrize("path", sorted(PACKAGE_ROOT.rglob("*.py")), ids=lambda path: path.name)
def test_no_module_imports_a_private_module_of_a_dependency(path: Path) -> None:
    for name in imported_modules(path):
        top, _, rest = name.partition(".")
        if top in ("anyio", "h11", "wsproto", "aiostream", "redis"):
            assert not any(part.startswith("_") for part in rest.split(".") if part), (
                f"{path.name} imports the private module {name}"
            )
