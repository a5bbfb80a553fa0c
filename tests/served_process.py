"""A real `opsbot serve` process, started and killed like ECS would, for crash tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from sandbox.pagerduty import PagerDutyEmulator
from sandbox.server import PORT_ATTEMPTS, free_port, port_taken
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from sandbox.tls import TestCA
from tests.conftest import (
    PD_API_TOKEN,
    PD_ROUTING_KEY,
    SLACK_SIGNING_SECRET,
    SLACK_TOKEN,
    TEST_CONFIG,
    TOPIC_ARN,
)
from tests.support import wait_for


class Process:
    """`opsbot serve` on `env["PORT"]`; when another process took that port before
    the server bound it, a new port goes into `env` (restarts use it too)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.port = int(env["PORT"])
            logged = log.stat().st_size if log.exists() else 0
            with log.open("ab") as out:
                self.popen = subprocess.Popen(
                    [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            wait_for(lambda: self.popen.poll() is not None or self.ready(), timeout_s=30)
            if self.popen.poll() is None:
                return
            said = log.read_bytes()[logged:].decode(errors="replace")
            if attempt == PORT_ATTEMPTS or not port_taken(said):
                raise RuntimeError(f"opsbot serve exited with {self.popen.returncode}:\n{said}")
            env["PORT"] = str(free_port())

    def ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(20)


@pytest.fixture
def environment(
    tmp_path: Path,
    database_url: str,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    sns_signer: SnsSigner,
    test_ca: TestCA,
) -> dict[str, str]:
    config = tmp_path / "opsbot.yaml"
    config.write_text(yaml.safe_dump(TEST_CONFIG))
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "DATABASE_URL": database_url,
        "OPSBOT_CONFIG": str(config),
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "PAGERDUTY_API_TOKEN": PD_API_TOKEN,
        "PAGERDUTY_API_URL": pagerduty.url,
        "PAGERDUTY_EVENTS_URL": pagerduty.url,
        "PD_KEY_PROD": PD_ROUTING_KEY,
        "OPSBOT_SNS_TOPIC_ARNS": TOPIC_ARN,
        "OPSBOT_SNS_CERT_URL_PATTERN": sns_signer.url_pattern,
        "SSL_CERT_FILE": str(test_ca.ca_file),
        "PORT": str(free_port()),
        "OPSBOT_LOG_LEVEL": "DEBUG",
    }


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()
