"""A served opsbot killed with a command's work still queued: the person is told, once."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import sqlalchemy as sa
import yaml

from bot.db.engine import make_engine
from bot.inbound.models import AfterAckWork
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from tests.conftest import SLACK_SIGNING_SECRET, TEST_CONFIG
from tests.incidents.helpers import responses_to
from tests.served_process import Process, environment, processes  # noqa: F401  # fixtures
from tests.support import slack_headers, slash_command_body, wait_for

LEASE_S = 2.0


def test_work_lost_with_a_killed_instance_is_answered_for_once(
    environment: dict[str, str],  # noqa: F811
    processes: list[Process],  # noqa: F811
    tmp_path: Path,
    database_url: str,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    config = {**TEST_CONFIG, "delivery": {**TEST_CONFIG["delivery"], "after_ack_lease_s": LEASE_S}}
    Path(environment["OPSBOT_CONFIG"]).write_text(yaml.safe_dump(config))
    log = tmp_path / "opsbot.log"
    first = Process(environment, log)
    processes.append(first)
    # /oncall's work asks PagerDuty who is on call: PagerDuty takes its time.
    pagerduty.faults.hang_next(1, seconds=30, calls=("/oncalls",))
    url = slack.response_url()
    payload = slash_command_body("/oncall", "", response_url=url)
    answer = httpx.post(
        f"http://127.0.0.1:{first.port}/slack/events",
        content=payload,
        headers=slack_headers(SLACK_SIGNING_SECRET, payload),
        timeout=10,
    )
    assert answer.status_code == 200
    engine = make_engine(database_url)
    try:
        # Written down before the ack's listener let go of it; PagerDuty holds the work.
        wait_for(lambda: queued(engine) == 1)
        first.kill()

        second = Process(environment, log)
        processes.append(second)
        [reply] = wait_for(lambda: responses_to(slack, url), timeout_s=30)
        assert reply["response_type"] == "ephemeral"
        assert reply["text"].startswith("opsbot stopped before it finished your /oncall (")
        assert queued(engine) == 0
        # Answered once: more rounds of tending (four to a lease) add nothing.
        time.sleep(LEASE_S)
    finally:
        engine.dispose()
    assert len(responses_to(slack, url)) == 1


def queued(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(sa.select(sa.func.count()).select_from(AfterAckWork)) or 0)
