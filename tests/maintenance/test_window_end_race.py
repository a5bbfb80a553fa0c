"""A window's end and an alarm it holds, recorded at the same instant (PostgreSQL).

A window delays pages, it never loses one: whichever commits first, the alarm is
paged once the window is over.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_late_and_flapping import waiting_on_a_lock
from tests.incidents.helpers import T0, only_incident, send_alarm
from tests.maintenance.conftest import silence, windows_of
from tests.support import LiveService, wait_for


def test_a_window_ending_while_an_alarm_it_holds_is_recorded_still_pages_it(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    engine = service.runtime.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite lets one writer at a time in: there is no race to lose")
    silence(service, slack, "silence prod-api-5xx for 30m reason deploy")
    [window] = windows_of(service)
    clock.advance(minutes=30, seconds=-1)  # the alarm comes a second before the end

    def end_the_window() -> None:
        clock.advance(seconds=1)
        service.runtime.jobs["maintenance.window_end"](window_id=window.id)

    # The window's end job runs while the alarm's transaction, having found the window
    # in force, is still open: it either waits for that commit or ends the window first.
    ending: list[Future[None]] = []

    def end_meanwhile(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        in_force = "FROM maintenance_windows" in statement and "ended_at IS NULL" in statement
        if in_force and not ending:
            ending.append(pool.submit(end_the_window))
            wait_for(lambda: ending[0].done() or waiting_on_a_lock(engine))

    with ThreadPoolExecutor(1) as pool:
        sa.event.listen(engine, "after_cursor_execute", end_meanwhile)
        try:
            send_alarm(service, sns_signer, "prod-api-5xx", "ALARM", T0 + timedelta(minutes=29))
        finally:
            sa.event.remove(engine, "after_cursor_execute", end_meanwhile)
        assert ending, "the alarm never looked for a window in force"
        ending[0].result(30)

    incident = wait_for(lambda: only_incident(service, "prod-api-5xx"))
    [ended] = windows_of(service)
    assert ended.ended_at is not None
    [trigger] = wait_for(lambda: pagerduty.events_for(incident.dedup_key))
    assert trigger["event_action"] == "trigger"
