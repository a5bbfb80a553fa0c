"""Reminders, escalation and the end of a silence: jobs on a test clock, and on two instances."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.alarms.service import Inbound
from bot.app import build_runtime
from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.incidents import render
from bot.runtime import Runtime
from bot.settings import Settings
from bot.slack_dates import slack_date
from sandbox.alarms import alarm_message
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG, TOPIC_ARN
from tests.incidents.helpers import (
    T0,
    audit_of,
    click,
    events_of,
    incident_row,
    message_text,
    only_incident,
    outbox_idle,
    page,
    pd_calls,
    send_alarm,
)
from tests.support import LiveService, metric, wait_for


def reminding_config(remind_after_min: float, escalate_after_min: float | None) -> Config:
    data: dict[str, Any] = copy.deepcopy(TEST_CONFIG)
    data["alarm_routes"][0]["remind_after_min"] = remind_after_min
    if escalate_after_min is not None:
        data["alarm_routes"][0]["escalate_after_min"] = escalate_after_min
    data["oncall"] = {"pagerduty_from": "opsbot@example.com"}
    return parse_config(data)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def start(
    settings: Settings,
    make_service: Callable[..., LiveService],
    pagerduty: PagerDutyEmulator,
    sns_signer: SnsSigner,
    clock: ManualClock,
) -> Iterator[Callable[[], LiveService]]:
    """A service whose jobs run only when the test says (`run_due` on the test clock)."""
    pagerduty.add_user("POPSBOT", "opsbot", "opsbot@example.com")
    config = reminding_config(5, 15)
    # The service checks an SNS message's Timestamp against its own clock.
    stamped_by, sns_signer.clock = sns_signer.clock, clock
    yield lambda: make_service(settings, config, clock=clock, run_jobs=False)
    sns_signer.clock = stamped_by


def due(service: LiveService, clock: ManualClock) -> list[str]:
    return service.runtime.scheduler.run_due(clock.now())


def test_reminder_then_escalation_fire_on_the_test_clock_and_survive_a_restart(
    start: Callable[[], LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    first = start()
    incident_id, message = page(first, sns_signer, slack, pagerduty)
    jobs = dict(first.runtime.scheduler.pending())
    assert jobs == {
        f"incident:{incident_id}:remind": T0 + timedelta(minutes=5),
        f"incident:{incident_id}:escalate": T0 + timedelta(minutes=15),
    }
    clock.advance(minutes=4)
    assert due(first, clock) == []
    first.stop()

    second = start()
    assert dict(second.runtime.scheduler.pending()) == jobs
    clock.advance(minutes=1)
    assert due(second, clock) == [f"incident:{incident_id}:remind"]
    [reminder] = wait_for(lambda: slack.thread("C0PRODALERTS", message.ts))
    assert "Still not acknowledged after 5 min" in reminder.text
    assert "<@U0ALICE>: please acknowledge" in reminder.text  # PagerDuty's assignee, in Slack
    assert (
        f"escalated in PagerDuty at {slack_date(datetime(2026, 11, 25, 10, 15, tzinfo=UTC))}"
        in reminder.text
    )
    assert due(second, clock) == []  # it ran once

    clock.advance(minutes=10)
    assert due(second, clock) == [f"incident:{incident_id}:escalate"]
    [put] = wait_for(lambda: pd_calls(pagerduty, "PUT"))
    assert put["from"] == "opsbot@example.com"
    assert put["body"]["incident"]["escalation_level"] == 2
    wait_for(lambda: "level 2" in message_text(message))
    [record] = audit_of(second, incident_id)
    assert (record.actor, record.action, record.outcome) == ("opsbot", "incident.escalate", "ok")
    assert second.runtime.scheduler.pending() == []


def test_acknowledgement_cancels_reminder_and_escalation(
    start: Callable[[], LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    assert len(service.runtime.scheduler.pending()) == 2
    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: "acknowledged by <@U0ALICE>" in message_text(message))
    wait_for(lambda: service.runtime.scheduler.pending() == [])
    row = incident_row(service, incident_id)
    assert row.remind_at is None and row.escalate_at is None

    clock.advance(minutes=30)
    assert due(service, clock) == []
    wait_for(lambda: outbox_idle(service))
    assert slack.thread("C0PRODALERTS", message.ts) == []
    assert [c["body"]["incident"]["status"] for c in pd_calls(pagerduty, "PUT")] == ["acknowledged"]


def test_a_lost_job_is_scheduled_again_at_start(
    start: Callable[[], LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    first = start()
    incident_id, message = page(first, sns_signer, slack, pagerduty)
    # A crash between the commit and the job store: the reminder's job is gone.
    first.runtime.scheduler.cancel(f"incident:{incident_id}:remind")
    first.stop()
    second = start()
    assert f"incident:{incident_id}:remind" in dict(second.runtime.scheduler.pending())
    clock.advance(minutes=5)
    assert f"incident:{incident_id}:remind" in due(second, clock)
    wait_for(lambda: slack.thread("C0PRODALERTS", message.ts))


@contextmanager
def events_refused(service: LiveService, kind: str) -> Iterator[None]:
    """A fault in the database: a timeline event of `kind` cannot be inserted meanwhile."""
    engine = service.runtime.engine
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(
                "CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse_event BEFORE INSERT ON incident_events FOR EACH ROW "
                f"WHEN (NEW.kind = '{kind}') EXECUTE FUNCTION refuse_event()"
            )
        else:
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse_event BEFORE INSERT ON incident_events "
                f"WHEN NEW.kind = '{kind}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
    try:
        yield
    finally:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.exec_driver_sql("DROP TRIGGER refuse_event ON incident_events")
                connection.exec_driver_sql("DROP FUNCTION refuse_event()")
            else:
                connection.exec_driver_sql("DROP TRIGGER refuse_event")


def test_a_reminder_or_escalation_that_fails_midway_is_not_lost(
    start: Callable[[], LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    first = start()
    incident_id, message = page(first, sns_signer, slack, pagerduty)
    remind, escalate = f"incident:{incident_id}:remind", f"incident:{incident_id}:escalate"
    clock.advance(minutes=5)
    with events_refused(first, "reminder"):
        # The job fails before its reply is recorded: its due time stays, and it is tried again.
        assert due(first, clock) == [remind]
    assert incident_row(first, incident_id).remind_at is not None
    assert (remind, clock.now() + timedelta(seconds=30)) in first.runtime.scheduler.pending()
    failures = "opsbot_scheduled_job_failures_total"
    assert metric(first, failures, job="incidents.remind", outcome="retried") == 1
    clock.advance(minutes=10)
    with events_refused(first, "escalating"):
        assert due(first, clock) == [remind, escalate]  # the reminder's second try goes through
    assert incident_row(first, incident_id).escalate_at is not None
    wait_for(lambda: len(slack.thread("C0PRODALERTS", message.ts)) == 1)
    assert pd_calls(pagerduty, "PUT") == []
    first.stop()

    # The next start schedules the escalation from its due time again (over its retry).
    second = start()
    assert due(second, clock) == [escalate]
    [put] = wait_for(lambda: pd_calls(pagerduty, "PUT"))
    assert put["body"]["incident"]["escalation_level"] == 2
    wait_for(lambda: len(slack.thread("C0PRODALERTS", message.ts)) == 2)
    texts = [m.text for m in slack.thread("C0PRODALERTS", message.ts)]
    assert any("Still not acknowledged after 5 min" in t for t in texts)
    assert any("escalating in PagerDuty" in t for t in texts)
    assert [e.kind for e in events_of(second, incident_id)].count("reminder") == 1
    assert due(second, clock) == []


def test_an_escalation_keeps_trying_through_a_pagerduty_outage(
    start: Callable[[], LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    # Longer than a person's call is tried for (5 attempts of the tests' backoff, at
    # most 1 s each, on a test clock running twice as fast as this one): nobody waits
    # on the job's answer, and on-call is not answering.
    pagerduty.faults.fail_for(5, status=503, calls=("/incidents/",))
    clock.advance(minutes=15)
    assert f"incident:{incident_id}:escalate" in due(service, clock)

    def escalated() -> list[dict[str, Any]]:
        clock.advance(seconds=0.5)
        return pd_calls(pagerduty, "PUT")

    [put] = wait_for(escalated, timeout_s=40, interval_s=0.25)
    assert put["body"]["incident"]["escalation_level"] == 2
    wait_for(lambda: "level 2" in message_text(message), timeout_s=10)
    assert [r.outcome for r in audit_of(service, incident_id)] == ["ok"]
    assert not any("could not" in m.text for m in slack.thread("C0PRODALERTS", message.ts))


def test_silence_end_pages_again_when_the_alarm_still_fires(
    start: Callable[[], LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    click(
        service,
        render.SILENCE,
        response_url=slack.response_url(),
        selected_option=f"{incident_id}:30m",
    )
    wait_for(lambda: incident_row(service, incident_id).silenced_until is not None)
    send_alarm(service, sns_signer, "prod-api-5xx", "OK", T0 + timedelta(minutes=1))
    wait_for(lambda: [e["event_action"] for e in pagerduty.events] == ["trigger", "resolve"])
    send_alarm(service, sns_signer, "prod-api-5xx", "ALARM", T0 + timedelta(minutes=2))
    wait_for(lambda: incident_row(service, incident_id).alarm_state == "ALARM")
    wait_for(lambda: outbox_idle(service))
    assert len(pagerduty.events) == 2  # silenced: not paged again

    clock.advance(minutes=30)
    assert f"incident:{incident_id}:silence_end" in due(service, clock)
    wait_for(lambda: [e["event_action"] for e in pagerduty.events][-1] == "trigger")
    wait_for(
        lambda: any(
            "Silence ended; still in ALARM: paged" in m.text
            for m in slack.thread("C0PRODALERTS", message.ts)
        )
    )
    assert len(slack.channel_messages("C0PRODALERTS")) == 1
    wait_for(lambda: "silenced" not in message_text(message))
    assert [e.kind for e in events_of(service, incident_id)][-1] == "unsilenced"


def test_reminders_run_on_one_of_two_instances_sharing_postgresql(
    settings: Settings,
    database_url: str,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several instances need PostgreSQL; SQLite is the single-instance default")
    config = reminding_config(0.02, None)  # 1.2 s
    one = build_runtime(settings, config)
    two = build_runtime(settings, config)
    for runtime in (one, two):
        runtime.scheduler.leader_interval_s = 0.2
    one.start()
    wait_for(lambda: one.scheduler.is_leader)
    two.start()
    try:

        def alarm(runtime: Runtime, name: str) -> None:
            body = alarm_message(name=name, state="ALARM", at=datetime.now(UTC))
            runtime.intake.record(
                Inbound(message_id=f"m-{name}", via="https", body=body, topic_arn=TOPIC_ARN)
            )

        def reminders(name: str) -> list[Any]:
            incident = only_incident(LiveServiceView(two), name)
            assert incident is not None
            return [e for e in events_of(LiveServiceView(two), incident.id) if e.kind == "reminder"]

        alarm(two, "prod-db-cpu")  # recorded by the follower, reminded by the leader
        wait_for(lambda: reminders("prod-db-cpu"), timeout_s=20)
        wait_for(lambda: len(slack.all_messages()) == 2)  # the alarm and one reminder
        [reminder] = reminders("prod-db-cpu")
        assert reminder.data["instance"] == one.outbox.instance_id
        assert not two.scheduler.is_leader

        one.stop()  # its connection closes; PostgreSQL releases the lock
        wait_for(lambda: two.scheduler.is_leader, timeout_s=10)
        alarm(two, "prod-db-latency")
        wait_for(lambda: reminders("prod-db-latency"), timeout_s=20)
        [reminder] = reminders("prod-db-latency")
        assert reminder.data["instance"] == two.outbox.instance_id
        assert len(reminders("prod-db-cpu")) == 1
    finally:
        two.stop()


class LiveServiceView:
    """The part of a LiveService the helpers read: its runtime (here without HTTP)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
