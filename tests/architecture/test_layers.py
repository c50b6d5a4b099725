"""The dependency rule between the top-level packages, checked by import-linter.

`shared/` imports neither `producers/`, `consumers/` nor `app/`; `producers/` and `consumers/`
never import each other or `app/`; `simulators/` import no belegsync code and nothing but `app/`
imports them.  The contracts live in pyproject.toml ([tool.importlinter]).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "producers", "consumers", "shared", "simulators")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """Run the checker on the packages in ``tree`` with the project's contracts."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_the_tree(target: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def test_the_packages_keep_the_dependency_rule() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden_import", "contract"),
    [
        ("shared/ledger.py", "import producers.outbox", "producers and consumers independent"),
        ("shared/domain.py", "from app import status", "producers and consumers independent"),
        (
            "producers/outbox.py",
            "from consumers import worker",
            "producers and consumers independent",
        ),
        ("consumers/handlers.py", "import app.bootstrap", "producers and consumers independent"),
        ("simulators/clock.py", "import shared.domain", "simulators import no belegsync code"),
        ("consumers/worker.py", "import simulators.pdf", "the pipeline never imports"),
    ],
)
def test_the_checker_refuses_a_forbidden_import(
    tmp_path: Path, module: str, forbidden_import: str, contract: str
) -> None:
    tree = copy_of_the_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\n{forbidden_import}  # planted by the test\n")

    result = lint_imports(tree)

    assert result.returncode != 0, result.stdout
    assert "1 broken" in result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert len(broken) == 1, result.stdout
    assert contract in broken[0], result.stdout
    assert module.removesuffix(".py").replace("/", ".") in result.stdout
