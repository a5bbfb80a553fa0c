"""The import contracts (pyproject.toml, [tool.importlinter]): kept by the tree, broken by a wrong import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "sandbox", "bench", "tests")
LINT_IMPORTS = "from importlinter.cli import lint_imports_command as run; run()"


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` over the tree at `cwd`, which comes first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the packages and the contracts, to break on purpose."""
    for name in PACKAGES:
        shutil.copytree(
            ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "results")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_infrastructure_importing_a_domain_breaks_the_layers(tree: Path) -> None:
    # The tie that once knotted bot/: the database package importing a domain's models.
    (tree / "bot" / "db" / "upward.py").write_text("from bot.incidents import models\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "bot and handlers: composition root" in result.stdout
    assert "BROKEN" in result.stdout
    assert "bot.db.upward -> bot.incidents.models" in result.stdout


def test_a_domain_importing_the_runtime_breaks_the_layers(tree: Path) -> None:
    (tree / "bot" / "deploys" / "upward.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from bot.runtime import Runtime\n"
    )
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "bot.deploys.upward -> bot.runtime" in result.stdout


def test_the_product_importing_the_sandbox_breaks_its_contract(tree: Path) -> None:
    (tree / "handlers" / "emulated.py").write_text("import sandbox.slack\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "The product imports no sandbox, benchmark or test code BROKEN" in result.stdout
    assert "handlers.emulated -> sandbox.slack" in result.stdout
