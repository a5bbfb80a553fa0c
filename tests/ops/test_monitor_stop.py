"""What the last EMF interval counted is written when the monitor stops.

A task stopped by a rolling deploy has counted, since its last EMF lines,
deliveries marked dead and jobs given up, some of them while its outbox and
scheduler stopped: the alarms watch those counts, so the monitor writes them
once more when it stops, after the outbox and the scheduler.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from bot.app import build_runtime
from bot.clock import ManualClock
from bot.config import parse_config
from bot.observability.metrics import Metrics
from bot.outbox.models import PAGERDUTY_EVENT
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from tests.conftest import TEST_CONFIG
from tests.ops.test_monitor_jobs import Monotonic, make_monitor, plain_line
from tests.support import wait_for


def test_the_interval_cut_short_by_a_stop_is_written(engine: sa.Engine) -> None:
    clock = ManualClock()
    metrics = Metrics()
    lines: list[str] = []
    monitor = make_monitor(engine, clock, metrics, lines, Monotonic())
    monitor.start()
    try:
        # Shortly before the stop, well inside the interval.
        metrics.delivery(PAGERDUTY_EVENT, "dead")
        metrics.scheduled_job_failures.labels("oncall.handoff", "gave_up").inc()
    finally:
        monitor.stop()

    plain = plain_line(lines)
    assert plain["opsbot_deliveries_dead"] == 1
    assert plain["opsbot_scheduled_jobs_given_up"] == 1
    assert plain["opsbot_heartbeat"] == 1
    assert metrics.take_interval().deliveries_dead == 0  # written, not left behind
    monitor.stop()  # a second stop writes nothing more
    assert len([line for line in lines if '"target"' not in line]) == 1


@pytest.mark.timeout(60)
def test_a_delivery_dying_while_the_runtime_stops_reaches_the_last_emf_lines(
    settings: Settings, slack: SlackEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    # Long enough a request timeout that the send outlasts the stop's first steps.
    delivery: dict[str, Any] = {**TEST_CONFIG["delivery"], "lease_s": 30.0}
    config = parse_config({**TEST_CONFIG, "delivery": delivery | {"request_timeout_s": 10.0}})
    runtime = build_runtime(settings, config, run_jobs=False)
    runtime.start()
    slack.faults.hang_next(1, seconds=4, calls=("chat.postMessage",))
    # Slack answers channel_not_found once the hang ends: the delivery dies during the stop.
    runtime.oncall.post(key="test:doomed", channel="C0MISSING", message={"text": "hello"})
    wait_for(lambda: runtime.outbox._in_flight)
    runtime.stop()

    documents = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line
    ]
    plain = [d for d in documents if "target" not in d]
    assert sum(d["opsbot_deliveries_dead"] for d in plain) == 1
