"""A real `opsbot serve` process killed with SIGKILL mid-delivery, then started again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from bot.db.engine import make_engine
from bot.incidents.models import Incident
from bot.outbox.models import Delivery
from bot.sandbox.alarms import alarm_message
from bot.sandbox.pagerduty import PagerDutyEmulator
from bot.sandbox.slack import SlackEmulator
from bot.sandbox.sns import SnsSigner, body
from bot.sandbox.tls import TestCA
from tests.conftest import (
    PD_API_TOKEN,
    PD_ROUTING_KEY,
    SLACK_SIGNING_SECRET,
    SLACK_TOKEN,
    TEST_CONFIG,
    TOPIC_ARN,
)
from tests.support import free_port, wait_for

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


class Process:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = int(env["PORT"])
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(self.ready, timeout_s=30)

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


def test_sigkill_mid_storm_loses_nothing_and_duplicates_nothing(
    environment: dict[str, str],
    processes: list[Process],
    tmp_path: Path,
    database_url: str,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    log = tmp_path / "opsbot.log"
    first = Process(environment, log)
    processes.append(first)
    # Slack answers every post slowly (but within the 2 s request timeout and the 5 s
    # lease), so posts are on the wire when the kill comes and land after it.
    slack.faults.hang_next(100, seconds=1.8, calls=("chat.postMessage",))
    pagerduty.faults.fail_for(2, status=503)
    names = [f"prod-node-{n}" for n in range(12)]
    for n, name in enumerate(names):
        envelope = sns_signer.notification(
            alarm_message(name=name, state="ALARM", at=T0 + timedelta(seconds=n)),
            topic_arn=TOPIC_ARN,
        )
        assert (
            httpx.post(
                f"http://127.0.0.1:{first.port}/sns", content=body(envelope), timeout=10
            ).status_code
            == 200
        )
    engine = make_engine(database_url)

    def posts_on_the_wire() -> bool:
        with engine.connect() as connection:
            claimed = connection.scalar(
                sa.select(sa.func.count()).where(
                    Delivery.kind == "slack.message", Delivery.claimed_by.is_not(None)
                )
            )
        return bool(claimed)

    wait_for(posts_on_the_wire, timeout_s=20, interval_s=0.02)
    first.kill()

    second = Process(environment, log)
    processes.append(second)
    try:

        def settled() -> bool:
            with engine.connect() as connection:
                return (
                    connection.scalar(
                        sa.select(sa.func.count()).where(Delivery.status == "pending")
                    )
                    == 0
                )

        wait_for(settled, timeout_s=90, interval_s=0.5)
        with engine.connect() as connection:
            incidents = connection.execute(sa.select(Incident.dedup_key)).scalars().all()
            dead = (
                connection.execute(sa.select(Delivery.id).where(Delivery.status == "dead"))
                .scalars()
                .all()
            )
    finally:
        engine.dispose()

    assert dead == []
    # Posts were on the wire at the kill: the new process looked for them before posting again.
    assert slack.calls_to("conversations.history")
    assert len(incidents) == len(names)
    posted = Counter(m.text.split(" ")[2] for m in slack.channel_messages("C0PRODALERTS"))
    assert posted == Counter({name: 1 for name in names})
    for dedup_key in incidents:
        assert len(pagerduty.incidents_for(dedup_key)) == 1
    output = log.read_text()
    for secret in (SLACK_TOKEN, SLACK_SIGNING_SECRET, PD_API_TOKEN, PD_ROUTING_KEY):
        assert secret not in output
