"""Two windows over one firing alarm, ended at the same moment (PostgreSQL).

A window's end passes over an alarm another window in force still holds: that
window's end is to page it. Two ends at once must not both pass over it, each
seeing the other window still in force: the ends take turns, and the second sees
the first window over and pages the alarm, once. SQLite lets one writer at a time
in: there is no race to lose.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from bot.incidents.actions import Requester
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import T0, incident_message, only_incident, outbox_idle, send_alarm
from tests.maintenance.conftest import audit_lines, silence, windows_of
from tests.support import LiveService, wait_for

NAME = "prod-api-5xx"
STILL_FIRES = "is over and this alarm still fires: paged"


def waiting_on_an_advisory_lock(engine: sa.Engine) -> int:
    """How many transactions of this database wait for an advisory lock."""
    with engine.connect() as connection:
        query = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return int(connection.scalar(sa.text(query)) or 0)


@pytest.mark.parametrize("first_end", ["by hand", "by its job, a moment early"])
def test_two_windows_ended_at_once_page_the_alarm_both_held(
    first_end: str,
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
    silence(service, slack, f"silence {NAME} for 30m reason deploy")
    silence(service, slack, "silence prod-api-* for 1h reason deploy too")
    first, second = windows_of(service)
    clock.advance(minutes=1)
    send_alarm(service, sns_signer, NAME, "ALARM", T0 + timedelta(minutes=1))
    incident = wait_for(lambda: only_incident(service, NAME))
    message = wait_for(lambda: incident_message(slack, incident))
    wait_for(lambda: outbox_idle(service))
    assert pagerduty.events_for(incident.dedup_key) == []  # held by both
    # Both end while both are in force; the first window's end job may run a moment
    # before its end (by our clock), which is still within the second window.
    clock.advance(minutes=29, milliseconds=-500)

    maintenance = service.runtime.maintenance
    assert maintenance is not None

    def end_by_hand(window_id: int) -> None:
        assert maintenance.end(window_id=window_id, requester=Requester("U0ALICE", "button"))

    def end_by_job(window_id: int) -> None:
        service.runtime.jobs["maintenance.window_end"](window_id=window_id)

    # Each end, once it marked its window over and read the windows in force, waits
    # until the other did too (both then commit, each having seen the other window in
    # force), or until the other waits for it to commit.
    marked: set[int] = set()
    looked: set[int] = set()

    def meanwhile(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        me = threading.get_ident()
        if statement.startswith("UPDATE maintenance_windows"):
            marked.add(me)
        in_force = "FROM maintenance_windows" in statement and "ended_at IS NULL" in statement
        if me in marked and in_force and me not in looked:
            looked.add(me)
            wait_for(lambda: len(looked) == 2 or waiting_on_an_advisory_lock(engine))

    sa.event.listen(engine, "after_cursor_execute", meanwhile)
    try:
        with ThreadPoolExecutor(2) as pool:
            ends = [
                pool.submit(end_by_hand if first_end == "by hand" else end_by_job, first.id),
                pool.submit(end_by_hand, second.id),
            ]
            for end in ends:
                end.result(30)
    finally:
        sa.event.remove(engine, "after_cursor_execute", meanwhile)

    assert len(looked) == 2
    assert all(w.ended_at is not None for w in windows_of(service))
    [trigger] = wait_for(lambda: pagerduty.events_for(incident.dedup_key))
    assert trigger["event_action"] == "trigger"
    wait_for(lambda: outbox_idle(service))
    thread = [m.text for m in slack.thread("C0PRODALERTS", message.ts)]
    assert sum(STILL_FIRES in text for text in thread) == 1, thread
    assert len(pagerduty.events_for(incident.dedup_key)) == 1
    paged = sorted(line.detail["paged"] for line in audit_lines(service, "maintenance.end"))
    assert paged == [0, 1]
