"""The image's entrypoint reads the config at the version its task definition pins.

ECS cannot select an SSM parameter version in a container's `secrets`, so the task
definition names the parameter and the version (OPSBOT_CONFIG_PARAMETER,
OPSBOT_CONFIG_VERSION) and the entrypoint fetches exactly that one, here from moto in
server mode.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_entrypoint(
    repo: Path, env: dict[str, str], *command: str
) -> subprocess.CompletedProcess[str]:
    # The entrypoint calls `python`: the one running the tests has boto3, as the image's has.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        ["sh", str(repo / "infra" / "docker" / "entrypoint.sh"), *command],
        env={"PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def aws_env(moto_server: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def two_versions(aws: Callable[[str], Any]) -> str:
    name = f"/opsbot-test-{uuid.uuid4().hex[:8]}/config"
    ssm = aws("ssm")
    ssm.put_parameter(Name=name, Type="SecureString", Value="apps: {}  # version 1")
    ssm.put_parameter(Name=name, Type="SecureString", Value="apps: {}  # version 2", Overwrite=True)
    return name


def test_the_pinned_version_is_written_not_the_latest(
    tmp_path: Path, infra_repo: Path, moto_server: str, aws: Callable[[str], Any]
) -> None:
    name = two_versions(aws)
    config = tmp_path / "conf" / "config.yaml"
    result = run_entrypoint(
        infra_repo,
        {
            **aws_env(moto_server),
            "OPSBOT_CONFIG_PARAMETER": name,
            "OPSBOT_CONFIG_VERSION": "1",
            "OPSBOT_CONFIG": str(config),
        },
        "sh",
        "-c",
        'cat "$OPSBOT_CONFIG"',
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "apps: {}  # version 1\n"
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    assert '"event": "config_fetch"' in result.stderr and '"version": "1"' in result.stderr


def test_a_missing_version_stops_the_container_before_the_command(
    tmp_path: Path, infra_repo: Path, moto_server: str, aws: Callable[[str], Any]
) -> None:
    name = two_versions(aws)
    config = tmp_path / "conf" / "config.yaml"
    marker = tmp_path / "ran"
    result = run_entrypoint(
        infra_repo,
        {
            **aws_env(moto_server),
            "OPSBOT_CONFIG_PARAMETER": name,
            "OPSBOT_CONFIG_VERSION": "7",
            "OPSBOT_CONFIG": str(config),
        },
        "touch",
        str(marker),
    )
    assert result.returncode != 0
    assert f"{name}:7" in result.stderr
    assert not marker.exists(), "the command ran without its config"
    assert not config.exists()


def test_a_parameter_without_a_version_is_refused(tmp_path: Path, infra_repo: Path) -> None:
    marker = tmp_path / "ran"
    result = run_entrypoint(
        infra_repo,
        {"OPSBOT_CONFIG_PARAMETER": "/opsbot-test/config", "OPSBOT_CONFIG": str(tmp_path / "c")},
        "touch",
        str(marker),
    )
    assert result.returncode == 64
    assert "OPSBOT_CONFIG_VERSION" in result.stderr
    assert not marker.exists()


def fake_opsbot(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A PATH whose `opsbot` writes each of its invocations' arguments to a file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    script = bin_dir / "opsbot"
    script.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\n')
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, calls


def test_serve_is_started_once_and_migrates_itself(tmp_path: Path, infra_repo: Path) -> None:
    env, calls = fake_opsbot(tmp_path)
    result = run_entrypoint(infra_repo, env, "opsbot", "serve", "--port", "8080")
    assert result.returncode == 0, result.stderr
    # `opsbot serve` applies the migrations before it listens: a separate
    # `opsbot db upgrade` first would only start a second interpreter.
    assert calls.read_text().splitlines() == ["serve --port 8080"]


def test_skip_migrations_starts_serve_without_them(tmp_path: Path, infra_repo: Path) -> None:
    env, calls = fake_opsbot(tmp_path)
    result = run_entrypoint(
        infra_repo, {**env, "OPSBOT_SKIP_MIGRATIONS": "1"}, "opsbot", "serve", "--port", "8080"
    )
    assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == ["serve --no-migrate --port 8080"]
