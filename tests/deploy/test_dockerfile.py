"""The Dockerfile and its build context: what `pip install .` in the image gets to see.

No Docker engine is needed: the build context is reproduced from the COPY lines and
.dockerignore, and a wheel is built from it the way the image's `pip install .` would.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.deploy.prom import REPO

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(relative: str) -> bool:
    parts = relative.split("/")
    for pattern in dockerignore():
        pattern = pattern.removeprefix("**/")
        for i in range(len(parts)):
            if fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) or fnmatch.fnmatch(
                parts[i], pattern
            ):
                return True
    return False


def copies() -> list[tuple[list[str], str]]:
    """Sources and destination of each COPY from the build context (not --from stages)."""
    result = []
    for word, rest in instructions():
        if word == "COPY" and "--from=" not in rest:
            args = [a for a in rest.split() if not a.startswith("--")]
            result.append((args[:-1], args[-1]))
    return result


def test_every_stage_builds_on_python_311_slim() -> None:
    for stage in stages():
        assert re.fullmatch(r"python:3\.11-slim( AS \w+)?", stage[0][1], re.IGNORECASE)


def test_runtime_stage_runs_belegsync_as_a_non_root_user() -> None:
    runtime = stages()[-1]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    entrypoints = [rest for word, rest in runtime if word == "ENTRYPOINT"]
    assert entrypoints == ['["belegsync"]']


def test_the_image_installs_the_project_with_pip() -> None:
    runs = " ".join(rest for word, rest in instructions() if word == "RUN")
    assert re.search(r"pip install \.(\s|$)", runs)


def test_secrets_and_local_state_never_enter_the_build_context() -> None:
    for path in (
        ".env",
        "belegsync.key",
        "belegsync.db",
        ".venv/bin/python",
        ".git/HEAD",
        "shared/__pycache__/x.pyc",
    ):
        assert ignored(path), path
    for path in ("pyproject.toml", "README.md", "shared/metrics.py", "alembic/env.py"):
        assert not ignored(path), path


def test_copied_sources_cover_what_the_wheel_is_built_from() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", project["project"]["readme"], *wheel["packages"]}
    needed |= set(wheel.get("force-include", {}))
    copied = {src.rstrip("/") for sources, _dest in copies() for src in sources}
    assert needed <= copied, f"the image's `pip install .` would miss {sorted(needed - copied)}"
    for src in copied:
        assert (REPO / src).exists(), f"COPY {src}: no such file in the repository"
        assert not ignored(src), f"COPY {src}: excluded by .dockerignore"


def _build_context(target: Path) -> None:
    """The files the build stage sees, following the COPY lines and .dockerignore."""
    for sources, dest in copies():
        for src in sources:
            origin = REPO / src
            into = target / (src if dest in (".", "./") else dest.removeprefix("./"))
            if origin.is_dir():
                for file in origin.rglob("*"):
                    rel = file.relative_to(REPO).as_posix()
                    if file.is_file() and not ignored(rel):
                        out = into / file.relative_to(origin)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(file, out)
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, into)


def test_a_wheel_built_from_the_image_context_contains_the_cli_and_migrations(
    tmp_path: Path,
) -> None:
    pytest.importorskip("hatchling", reason="hatchling builds the wheel")
    context = tmp_path / "context"
    _build_context(context)
    out = tmp_path / "wheel"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(context),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("belegsync-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in (
        "shared/metrics.py",
        "shared/health.py",
        "shared/logs.py",
        "app/cli/__init__.py",
    ):
        assert module in names, module
    assert any(n.startswith("shared/_alembic/") for n in names), "migrations missing"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "belegsync = app.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
