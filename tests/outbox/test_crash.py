"""A real `opsbot serve` process killed with SIGKILL mid-delivery, then started again."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

from bot.db.engine import make_engine
from bot.incidents.models import Incident
from bot.outbox.models import Delivery
from sandbox.alarms import alarm_message
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner, body
from tests.conftest import (
    PD_API_TOKEN,
    PD_ROUTING_KEY,
    SLACK_SIGNING_SECRET,
    SLACK_TOKEN,
    TOPIC_ARN,
)
from tests.served_process import Process, environment, processes  # noqa: F401  # fixtures
from tests.support import wait_for

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def test_sigkill_mid_storm_loses_nothing_and_duplicates_nothing(
    environment: dict[str, str],  # noqa: F811
    processes: list[Process],  # noqa: F811
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
                f"http://127.0.0.1:{first.port}/sns",
                content=body(envelope),
                headers={"x-amz-sns-topic-arn": TOPIC_ARN},
                timeout=10,
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
