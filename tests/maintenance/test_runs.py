"""A run of windows is bounded per alarm held, whatever the windows' patterns, and two
windows made at the same moment are checked one after the other.

`max_min` bounds how long one alarm is held in a row: every window that may hold an
alarm the new one holds counts in its run, whether it names the alarms with the same
glob, another glob, a more specific name or a route (by its rules and by the
incidents recorded on it).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import event

from bot.incidents.actions import Requester
from bot.maintenance.models import MaintenanceWindow
from bot.maintenance.requests import WindowRequest
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import T0, only_incident, responses_to, send_alarm
from tests.maintenance.conftest import audit_lines, config_with, silence, windows_of
from tests.support import LiveService, wait_for

UP_TO_2H = {"incidents": {"silence": {"channel_members": True, "max_min": 120}}}


def made(reply: str | None) -> bool:
    return reply is not None and "Maintenance window #" in reply


def test_windows_over_other_spellings_of_the_same_alarms_count_in_one_run(
    start: Callable[..., LiveService], slack: SlackEmulator
) -> None:
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    service = start(config_with(rights=UP_TO_2H))
    assert made(silence(service, slack, "silence prod-api-* for 2h reason upgrade")[1])

    # Each of these holds some alarm #1 holds (`prod-api-x`, `prod-api-5xx`; route `prod`
    # takes `prod-*`), from when #1 ends: that alarm would be held 3h in a row.
    for target, shown in [
        ("prod-api*-*", "alarms `prod-api*-*`"),
        ("prod-api-[a-z]*", "alarms `prod-api-[a-z]*`"),
        ("prod-api-5xx", "alarms `prod-api-5xx`"),
        ("*-5xx", "alarms `*-5xx`"),
        ("prod", "alarms of route `prod`"),
    ]:
        _, reply = silence(service, slack, f"silence {target} in 120m for 1h reason part 2")
        assert reply is not None, target
        assert (
            "With maintenance window(s) #1 (alarms `prod-api-*`, until "
            "<!date^1795608000^{date_short_pretty} {time}|2026-11-25 12:00 UTC>), "
            f"this one would hold {shown} for 180 minutes in a row, until "
        ) in reply, reply
        assert "|2026-11-25 13:00 UTC>." in reply
        assert "120 minutes at most, not 180" in reply
    assert [w.pattern for w in windows_of(service)] == ["prod-api-*"]
    refused = audit_lines(service, "maintenance.create")[1:]
    assert [(r.outcome, r.target) for r in refused] == [
        ("refused", "alarms:prod-api*-*"),
        ("refused", "alarms:prod-api-[a-z]*"),
        ("refused", "alarms:prod-api-5xx"),
        ("refused", "alarms:*-5xx"),
        ("refused", "route:prod"),
    ]

    # Globs no name of #1 matches have runs of their own.
    assert made(silence(service, slack, "silence prod-db-* in 120m for 2h reason db")[1])
    assert made(silence(service, slack, "silence prod-api in 120m for 2h reason no dash")[1])
    assert [w.pattern for w in windows_of(service)] == ["prod-api-*", "prod-db-*", "prod-api"]


def test_a_route_window_counts_with_globs_over_the_incidents_recorded_on_it(
    start: Callable[..., LiveService], sns_signer: SnsSigner, slack: SlackEmulator
) -> None:
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    first = start()
    send_alarm(first, sns_signer, "prod-api-5xx", "ALARM", T0)
    incident = wait_for(lambda: only_incident(first, "prod-api-5xx"))
    assert incident.route_name == "prod"
    first.stop()
    # The route's rule changes: the open incident stays on `prod`, and a window over `prod`
    # holds it still.
    prod, default = TEST_CONFIG["alarm_routes"]
    service = start(
        config_with(
            alarm_routes=[{**prod, "match": {"alarm_name": "svc-*"}}, default], rights=UP_TO_2H
        )
    )
    assert made(silence(service, slack, "silence prod for 2h reason failover")[1])

    _, reply = silence(service, slack, "silence prod-api-* in 120m for 1h reason more")
    assert reply is not None
    assert "With maintenance window(s) #1 (route `prod`, until " in reply
    assert "this one would hold alarms `prod-api-*` for 180 minutes in a row" in reply
    _, reply = silence(service, slack, "silence svc-a* in 120m for 1h reason more")
    assert reply is not None and "180 minutes in a row" in reply  # by the route's rule
    # No name `prod` may hold now: a run of its own.
    assert made(silence(service, slack, "silence prod-db-* in 120m for 2h reason db")[1])
    assert [w.pattern for w in windows_of(service)] == ["prod", "prod-db-*"]


class Race:
    """Two windows made at once from two threads, each alone within `max_min` but not
    end to end; `wait` holds each thread once, where an engine event calls it, until
    the other comes too (or `timeout_s` passes)."""

    def __init__(self, service: LiveService, slack: SlackEmulator, *, timeout_s: float) -> None:
        self.service = service
        self.slack = slack
        self.barrier = threading.Barrier(2, timeout=timeout_s)
        self.racers: set[int] = set()  # threads still to be held

    def racing(self) -> bool:
        return threading.get_ident() in self.racers

    def wait(self) -> None:
        if not self.racing():
            return
        self.racers.discard(threading.get_ident())
        # A barrier broken by its timeout: the other never came (it waits for this one).
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait()

    def run(self, listeners: dict[str, Callable[..., None]]) -> list[int | None]:
        engine = self.service.runtime.engine
        assert self.service.runtime.sessions.kw["bind"] is engine
        for name, listener in listeners.items():
            event.listen(engine, name, listener)
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                now = pool.submit(self.make, WindowRequest("prod", T0, 120, "drill"))
                later = pool.submit(
                    self.make,
                    WindowRequest("prod", T0 + timedelta(minutes=120), 120, "drill, part 2"),
                )
                return [now.result(timeout=60), later.result(timeout=60)]
        finally:
            for name, listener in listeners.items():
                event.remove(engine, name, listener)

    def make(self, request: WindowRequest) -> int | None:
        self.racers.add(threading.get_ident())
        requester = Requester("U0ALICE", "command", response_url=self.slack.response_url())
        windows = self.service.runtime.maintenance
        assert windows is not None
        return windows.create(request=request, requester=requester)


def only_one_was_made(service: LiveService, outcomes: list[int | None]) -> None:
    assert sorted(outcomes, key=lambda o: o is None) == [1, None]
    assert len(windows_of(service)) == 1
    lines = audit_lines(service, "maintenance.create")
    assert sorted(line.outcome for line in lines) == ["ok", "refused"]
    [refusal] = [line for line in lines if line.outcome == "refused"]
    assert "240 minutes in a row" in refusal.detail["reason"]


def test_two_windows_made_at_once_cannot_both_pass_the_run_check(
    start: Callable[..., LiveService], slack: SlackEmulator
) -> None:
    """Each request is held once it has read the windows and ended that read's
    transaction, until the other has too: a check apart from its insert lets both in."""
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    service = start(config_with(rights=UP_TO_2H))
    race = Race(service, slack, timeout_s=10)
    checked: set[int] = set()

    def read(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        selected = statement.lstrip().upper().startswith("SELECT")
        if race.racing() and selected and "FROM maintenance_windows" in statement:
            checked.add(threading.get_ident())

    def returned(_dbapi_connection: Any, _record: Any) -> None:
        if threading.get_ident() in checked:
            race.wait()

    outcomes = race.run({"before_cursor_execute": read, "checkin": returned})
    assert not race.barrier.broken  # both came to it: each read before either inserted
    only_one_was_made(service, outcomes)


def test_a_window_being_made_holds_the_next_before_its_check(
    start: Callable[..., LiveService], slack: SlackEmulator
) -> None:
    """Each request is held just before its insert, in its transaction, until the other
    comes too: the other never does, since it cannot read the windows before the first
    has committed (PostgreSQL: the advisory lock; SQLite: `BEGIN IMMEDIATE`)."""
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    service = start(config_with(rights=UP_TO_2H))
    race = Race(service, slack, timeout_s=2)

    def insert(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO MAINTENANCE_WINDOWS"):
            race.wait()

    outcomes = race.run({"before_cursor_execute": insert})
    assert race.barrier.broken  # the first waited alone: the second could not check meanwhile
    only_one_was_made(service, outcomes)


def test_a_run_that_grows_while_checked_is_checked_again_and_at_last_refused(
    start: Callable[..., LiveService], slack: SlackEmulator
) -> None:
    """Each time the request has read the windows and ended that transaction (to ask
    for the rights the run needs), someone else makes a window that lengthens it."""
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    service = start(config_with(rights={"incidents": {"silence": {"channel_members": True}}}))
    assert made(silence(service, slack, "silence prod for 1h reason drill")[1])
    engine = service.runtime.engine
    me = threading.get_ident()
    checked: list[bool] = []
    ends = [T0 + timedelta(hours=2)]

    def read(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        selected = statement.lstrip().upper().startswith("SELECT")
        if threading.get_ident() == me and selected and "FROM maintenance_windows" in statement:
            checked.append(True)

    def returned(_dbapi_connection: Any, _record: Any) -> None:
        if threading.get_ident() != me or not checked:
            return
        checked.clear()
        with service.runtime.sessions() as db:
            db.add(
                MaintenanceWindow(
                    kind="route",
                    pattern="prod",
                    reason="meanwhile",
                    created_by="U0BOB",
                    created_at=T0,
                    starts_at=ends[-1],
                    ends_at=ends[-1] + timedelta(hours=1),
                    updated_at=T0,
                )
            )
            db.commit()
        ends.append(ends[-1] + timedelta(hours=1))

    url = slack.response_url()
    requester = Requester("U0ALICE", "command", response_url=url)
    windows = service.runtime.maintenance
    assert windows is not None
    event.listen(engine, "before_cursor_execute", read)
    event.listen(engine, "checkin", returned)
    try:
        made_id = windows.create(
            request=WindowRequest("prod", T0 + timedelta(hours=1), 60, "part 2"),
            requester=requester,
        )
    finally:
        event.remove(engine, "before_cursor_execute", read)
        event.remove(engine, "checkin", returned)

    assert made_id is None
    assert [w.reason for w in windows_of(service)] == ["drill"] + ["meanwhile"] * 3
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert "were made while this one was being checked, again and again" in reply["text"]
    [_, refused] = audit_lines(service, "maintenance.create")
    assert (refused.outcome, refused.target) == ("refused", "route:prod")
