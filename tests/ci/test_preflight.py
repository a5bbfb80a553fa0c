"""`.ci/preflight`: each missing piece is one line naming it and how to get it, exit 1.

The real Python, and the real PostgreSQL programs where the check needs them, are used;
the terraform programs are stand-ins (scripts printing a version) and the provider
mirror is a directory tree made here, so the tests do not depend on what the machine has.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.ci.conftest import REPO, Run, pinned_aws_version, terraform_platform


def path_without(program: str, scratch: Path) -> str:
    """PATH with `program` gone: each directory holding it is replaced by a copy of links
    to everything else it holds."""
    parts: list[str] = []
    for i, entry in enumerate(os.environ["PATH"].split(os.pathsep)):
        directory = Path(entry)
        if not (directory / program).exists():
            parts.append(entry)
            continue
        shadow = scratch / f"path{i}"
        shadow.mkdir(parents=True)
        for item in directory.iterdir():
            if item.name != program:
                (shadow / item.name).symlink_to(item)
        parts.append(str(shadow))
    path = os.pathsep.join(parts)
    assert shutil.which(program, path=path) is None
    return path


def fake_program(path: Path, output: str) -> Path:
    """An executable that prints `output` whatever its arguments."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\n")
    path.chmod(0o755)
    return path


def fake_mirror(root: Path) -> Path:
    """A provider mirror holding the pinned AWS provider for this platform (unpacked)."""
    provider = root / "registry.terraform.io/hashicorp/aws" / pinned_aws_version()
    (provider / terraform_platform()).mkdir(parents=True)
    return root


def installed_tools(venv: Path) -> Path:
    """A tools virtualenv as .ci/check-infra leaves it: stamped for the current pins."""
    digest = hashlib.sha256((REPO / ".ci" / "infra-tools.txt").read_bytes()).hexdigest()
    venv.mkdir(parents=True)
    (venv / f".installed-{digest[:16]}").touch()
    return venv


@pytest.fixture
def ready_env(ci_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """An environment in which every check passes: the real Python, a TEST_DATABASE_URL
    (no cluster needed), a terraform of the required version, a mirror with the pin, the
    infra check tools installed."""
    terraform = fake_program(tmp_path / "tf" / "terraform", "Terraform v1.11.4\non linux_amd64")
    return ci_env | {
        "PYTHON": sys.executable,
        "TEST_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "TERRAFORM": str(terraform),
        "TF_PROVIDER_MIRROR": str(fake_mirror(tmp_path / "mirror")),
        "OPSBOT_TOOLS_VENV": str(installed_tools(tmp_path / "tools")),
    }


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_passes_silently_when_everything_is_there(ci_run: Run, ready_env: dict[str, str]) -> None:
    result = ci_run("preflight", env=ready_env)

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_terraform_missing_from_path_is_one_line_saying_how_to_install_it(
    ci_run: Run, ready_env: dict[str, str], tmp_path: Path
) -> None:
    env = ready_env | {"PATH": path_without("terraform", tmp_path / "shadow")}
    del env["TERRAFORM"]

    result = ci_run("preflight", env=env)

    assert result.returncode == 1
    assert result.stdout == ""
    [line] = lines(result.stderr)
    assert line.startswith("preflight: terraform 1.11+ not found (TERRAFORM=terraform): ")
    assert "https://developer.hashicorp.com/terraform/install" in line
    assert "set TERRAFORM=" in line


def test_an_old_terraform_is_named_with_its_version(
    ci_run: Run, ready_env: dict[str, str], tmp_path: Path
) -> None:
    old = fake_program(tmp_path / "old" / "terraform", "Terraform v1.5.7\non linux_amd64")

    result = ci_run("preflight", env=ready_env | {"TERRAFORM": str(old)})

    assert result.returncode == 1
    [line] = lines(result.stderr)
    assert f"terraform 1.5.7 (TERRAFORM={old}) is older than the 1.11 infra/ requires" in line


def test_a_mirror_without_the_pinned_provider_is_refused(
    ci_run: Run, ready_env: dict[str, str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty-mirror"
    (empty / "registry.terraform.io/hashicorp/aws/4.0.0" / terraform_platform()).mkdir(parents=True)

    result = ci_run("preflight", env=ready_env | {"TF_PROVIDER_MIRROR": str(empty)})

    assert result.returncode == 1
    [line] = lines(result.stderr)
    assert line.startswith(f"preflight: TF_PROVIDER_MIRROR={empty} holds no hashicorp/aws ")
    assert f"{pinned_aws_version()} for {terraform_platform()}" in line
    assert "terraform -chdir=infra/envs/staging providers mirror" in line


def test_an_old_python_is_named_with_its_version(
    ci_run: Run, ready_env: dict[str, str], tmp_path: Path
) -> None:
    old = fake_program(tmp_path / "py" / "python3", "3.9.18")

    result = ci_run("preflight", env=ready_env | {"PYTHON": str(old)})

    assert result.returncode == 1
    [line] = lines(result.stderr)
    assert f"Python 3.9.18 (PYTHON={old}) is older than the 3.11 pyproject.toml requires" in line
    assert "set PYTHON=" in line


def test_a_python_too_old_for_the_infra_tools_is_refused_until_they_are_installed(
    ci_run: Run, ready_env: dict[str, str], tmp_path: Path
) -> None:
    python = fake_program(tmp_path / "py" / "python3", "3.11.2")
    env = ready_env | {"PYTHON": str(python), "OPSBOT_TOOLS_VENV": str(tmp_path / "no-tools")}

    result = ci_run("preflight", env=env)

    assert result.returncode == 1
    [line] = lines(result.stderr)
    assert line.startswith(f"preflight: Python 3.11.2 (PYTHON={python}) is older than the 3.11.5")
    assert "infra check tools need (.ci/infra-tools.txt)" in line
    installed = ci_run("preflight", env=env | {"OPSBOT_TOOLS_VENV": ready_env["OPSBOT_TOOLS_VENV"]})
    assert (installed.returncode, installed.stderr) == (0, "")


def test_postgresql_programs_missing_name_pg_bindir_and_test_database_url(
    ci_run: Run, ready_env: dict[str, str], tmp_path: Path
) -> None:
    env = ready_env | {"PG_BINDIR": str(tmp_path)}
    del env["TEST_DATABASE_URL"]

    result = ci_run("preflight", env=env)

    assert result.returncode == 1
    [line] = lines(result.stderr)
    assert line.startswith(f"preflight: PG_BINDIR={tmp_path} has no initdb, pg_ctl and postgres: ")
    assert "apt-get install postgresql" in line
    assert "TEST_DATABASE_URL" in line


def test_every_missing_piece_has_its_own_line(
    ci_run: Run, ready_env: dict[str, str], tmp_path: Path
) -> None:
    env = ready_env | {
        "PYTHON": str(tmp_path / "no-python"),
        "PG_BINDIR": str(tmp_path),
        "TERRAFORM": str(tmp_path / "no-terraform"),
        "TF_PROVIDER_MIRROR": str(tmp_path),
    }
    del env["TEST_DATABASE_URL"]

    result = ci_run("preflight", env=env)

    assert result.returncode == 1
    found = lines(result.stderr)
    assert len(found) == 4
    assert found[0].startswith("preflight: Python 3.11+ not found")
    assert found[1].startswith(f"preflight: PG_BINDIR={tmp_path}")
    assert found[2].startswith("preflight: terraform 1.11+ not found")
    assert found[3].startswith(f"preflight: TF_PROVIDER_MIRROR={tmp_path}")


def test_checks_can_be_chosen_and_unknown_ones_are_refused(
    ci_run: Run, ready_env: dict[str, str], tmp_path: Path
) -> None:
    env = ready_env | {"TERRAFORM": str(tmp_path / "no-terraform")}

    assert ci_run("preflight", "python", "mirror", env=env).returncode == 0
    result = ci_run("preflight", "pyhton", env=env)

    assert result.returncode == 1
    assert lines(result.stderr) == [
        "preflight: unknown check 'pyhton' (python, postgres, terraform, mirror, tools)"
    ]
