"""A window's end at its time is audited, as an end by hand is: by opsbot, via its job."""

from __future__ import annotations

from collections.abc import Callable

from bot.clock import ManualClock
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import T0, incident_message, only_incident, outbox_idle, send_alarm
from tests.maintenance.conftest import audit_lines, silence
from tests.support import LiveService, wait_for

NAME = "prod-api-5xx"


def test_the_end_of_a_window_by_its_job_is_audited_once_with_what_it_paged(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    silence(service, slack, f"silence {NAME} for 30m reason deploy")
    silence(service, slack, "silence prod-db-* for 30m reason failover")
    send_alarm(service, sns_signer, NAME, "ALARM", T0)
    held = wait_for(lambda: only_incident(service, NAME))
    wait_for(lambda: incident_message(slack, held))
    wait_for(lambda: outbox_idle(service))
    clock.advance(minutes=30)
    assert sorted(service.runtime.scheduler.run_due(clock.now())) == [
        "maintenance:1:end",
        "maintenance:2:end",
    ]
    wait_for(lambda: pagerduty.events_for(held.dedup_key))

    lines = audit_lines(service, "maintenance.end")
    assert sorted((line.target, line.actor, line.outcome, line.detail) for line in lines) == [
        ("maintenance:1", "opsbot", "ok", {"via": "job", "paged": 1}),
        ("maintenance:2", "opsbot", "ok", {"via": "job", "paged": 0}),
    ]
    assert all(line.at == clock.now() for line in lines)
    # Run again (a restart re-scheduled it): it does nothing, and says nothing twice.
    service.runtime.jobs["maintenance.window_end"](window_id=1)
    assert len(audit_lines(service, "maintenance.end")) == 2
