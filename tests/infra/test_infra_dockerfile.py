"""The image's install steps, replayed without a Docker engine.

The Dockerfile's build stage is read instruction by instruction: its COPY sources are
copied into a scratch directory standing for the image's WORKDIR, and its `pip install`
RUN steps run there with the same arguments (the same requirements.lock constraints)
in a fresh virtualenv. Then the container's start is replayed: the image's entrypoint
runs `opsbot db upgrade` and `opsbot serve` from that virtualenv against SQLite, and
GET /healthz must answer 200.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import venv
from pathlib import Path

import pytest

START_TIMEOUT_S = 60


def build_stage(dockerfile: Path) -> list[tuple[str, str]]:
    """(instruction, arguments) of the first stage, continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stage: list[tuple[str, str]] = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM" and stage:
            break
        stage.append((instruction.upper(), args.strip()))
    return stage


def replay_build_stage(repo: Path, scratch: Path, venv_dir: Path) -> list[list[str]]:
    """Copy the build stage's inputs and run its pip installs into venv_dir."""
    workdir = scratch
    ran: list[list[str]] = []
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env["PATH"] = f"{venv_dir / 'bin'}{os.pathsep}{env['PATH']}"
    for instruction, args in build_stage(repo / "Dockerfile"):
        if instruction == "WORKDIR":
            workdir = scratch / args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            *sources, dest = shlex.split(args)
            for source in sources:
                src = repo / source
                target = workdir / dest
                if src.is_dir():
                    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, target / src.name)
        elif instruction == "RUN" and args.startswith("pip install"):
            command = [str(venv_dir / "bin" / "python"), "-m", *shlex.split(args)]
            subprocess.run(command, cwd=workdir, env=env, check=True)
            ran.append(command)
    return ran


def wait_for_health(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return -1
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    return 0


def test_dockerfile_is_multi_stage_non_root_and_serves(infra_repo: Path) -> None:
    text = (infra_repo / "Dockerfile").read_text()
    assert text.count("\nFROM python:3.11-slim") == 2
    assert "--constraint requirements.lock" in text
    assert "\nUSER 10001" in text
    assert 'CMD ["opsbot", "serve"]' in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert "EXPOSE 3000" in text


# A fresh virtual environment and a full pip install: minutes on a busy 2-core machine.
@pytest.mark.timeout(600)
def test_image_install_steps_give_a_serving_opsbot(
    infra_repo: Path, tmp_path: Path, infra_free_port: int
) -> None:
    venv_dir = tmp_path / "venv"
    venv.create(venv_dir, with_pip=True)
    ran = replay_build_stage(infra_repo, tmp_path / "image", venv_dir)
    assert ran, "the Dockerfile's build stage has no pip install step"
    assert (venv_dir / "bin" / "opsbot").exists()
    # The image ships the product only: the emulators and the console stay in the checkout.
    shipped = subprocess.run(
        [str(venv_dir / "bin" / "python"), "-c", "import sandbox"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    assert shipped.returncode != 0, "the image's install steps installed the sandbox"

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPSBOT_", "SLACK_", "PAGERDUTY_", "DATABASE_"))
    }
    env.update(
        {
            "PATH": f"{venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'opsbot.db'}",
            "PORT": str(infra_free_port),
            # Nothing may leave the machine: every outbound API points at a closed port.
            "SLACK_API_URL": "http://127.0.0.1:9/api/",
            "PAGERDUTY_API_URL": "https://127.0.0.1:9",
            "PAGERDUTY_EVENTS_URL": "https://127.0.0.1:9",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": "test-signing-secret",
        }
    )
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            "sh",
            str(infra_repo / "infra" / "docker" / "entrypoint.sh"),
            "opsbot",
            "serve",
            "--port",
            str(infra_free_port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        status = wait_for_health(
            f"http://127.0.0.1:{infra_free_port}/healthz", process, START_TIMEOUT_S
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    output = (tmp_path / "serve.log").read_text(errors="replace")[-4000:]
    assert status == 200, f"GET /healthz gave {status} (-1: exited, 0: no answer)\n{output}"
    assert (tmp_path / "opsbot.db").exists(), "the entrypoint did not run `opsbot db upgrade`"


def test_entrypoint_writes_the_config_from_the_environment(
    tmp_path: Path, infra_repo: Path
) -> None:
    config = tmp_path / "conf" / "config.yaml"
    result = subprocess.run(
        ["sh", str(infra_repo / "infra" / "docker" / "entrypoint.sh"), "cat", str(config)],
        env={
            "PATH": os.environ["PATH"],
            "OPSBOT_CONFIG_YAML": "apps: {}",
            "OPSBOT_CONFIG": str(config),
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "apps: {}\n"
    assert oct(config.stat().st_mode & 0o777) == "0o600"
