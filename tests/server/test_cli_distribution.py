"""The distribution is ``spikard-stream`` (``spikard`` on the package index is another
project); the import name and the script stay ``spikard``."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import spikard

from . import ROOT


def test_installed_as_spikard_stream() -> None:
    distribution = metadata.distribution("spikard-stream")
    assert distribution.version == spikard.__version__
    scripts = {e.name: e.value for e in distribution.entry_points if e.group == "console_scripts"}
    assert scripts == {"spikard": "spikard.server.cli:main"}


def test_no_distribution_named_spikard_is_installed() -> None:
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.distribution("spikard")  # if this fails: pip uninstall spikard (the old name)


def test_the_extras_that_name_the_project_use_the_new_name() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "spikard-stream"
    requirements = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        requirements += extra
    names = {re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0] for requirement in requirements}
    assert "spikard" not in names
    extras = project["optional-dependencies"]
    assert "spikard-stream[test,uvloop,redis,speedups]" in extras["dev"]
    assert "spikard-stream[uvloop,speedups]" in extras["bench"]
    assert project["scripts"] == {"spikard": "spikard.server.cli:main"}


@pytest.mark.slow
def test_a_fresh_venv_installs_spikard_stream_and_no_spikard(tmp_path: Path) -> None:
    """``pip install -e '.[dev]'`` in a new virtual environment (about 20 s with a warm cache)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[dev]"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stderr

    def pip_show(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(python), "-m", "pip", "show", name],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    missing = pip_show("spikard")
    assert missing.returncode != 0
    assert "not found: spikard" in missing.stderr
    found = pip_show("spikard-stream")
    assert found.returncode == 0
    assert "Name: spikard-stream" in found.stdout
    version = subprocess.run(
        [str(venv / "bin" / "spikard"), "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert version.stdout.startswith(f"spikard {spikard.__version__} ")
