"""Fixtures for the tests of the set-up scripts in .ci/ (preflight, test-postgres). Prefixed `ci_`."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Variables the scripts read: a developer's or make's values must not leak into a test.
SCRIPT_VARIABLES = (
    "PYTHON",
    "TERRAFORM",
    "TF_PROVIDER_MIRROR",
    "TEST_DATABASE_URL",
    "PG_BINDIR",
    "OPSBOT_PG_DIR",
    "OPSBOT_PG_USER",
    "OPSBOT_TOOLS_VENV",
)

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def ci_env() -> dict[str, str]:
    """The environment of this process without the scripts' own variables."""
    return {k: v for k, v in os.environ.items() if k not in SCRIPT_VARIABLES}


@pytest.fixture
def ci_run() -> Run:
    """Runs `.ci/<script> args...` with the given environment; never raises on failure."""

    def run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(REPO / ".ci" / script), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    return run


def pinned_aws_version() -> str:
    """The AWS provider version infra/'s roots pin."""
    text = (REPO / "infra" / "envs" / "staging" / "main.tf").read_text()
    match = re.search(r'aws = \{[^}]*version\s*=\s*"([0-9.]+)"', text)
    assert match, "infra/envs/staging/main.tf pins no AWS provider version"
    return match.group(1)


def terraform_platform() -> str:
    """This machine's platform as Terraform names it (linux_amd64, darwin_arm64, ...)."""
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
    machine = platform.machine().lower()
    return f"{platform.system().lower()}_{arch.get(machine, machine)}"
