"""The REST token's lane counts requests, not deliveries.

The worker takes one `pd:rest` token for a delivery; a call that makes more than
one request (an escalation reads the incident, then changes it) takes a token for
each request after the first. One a moment away is waited for, so a person's
click stays quick; one further away sends the delivery back to the outbox before
anything is changed in PagerDuty.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import sqlalchemy as sa

from bot.db.engine import make_sessionmaker
from bot.incidents.actions import ESCALATE, rest_order_key
from bot.incidents.models import Incident
from bot.incidents.pagerduty_calls import PagerDutyActionSender
from bot.outbox import service as outbox
from bot.outbox.models import PAGERDUTY_REST, Delivery
from bot.outbox.pacing import Pacer
from bot.outbox.results import Job, Retry, Sent
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import page, pd_calls
from tests.support import LiveService

LANE = "pd:rest"


def _escalation(service: LiveService, incident_id: int) -> Job:
    """A person's escalation of the incident, claimed elsewhere (the service's own worker
    leaves it alone), as the worker hands it to its sender."""
    now = service.runtime.clock.now()
    with make_sessionmaker(service.runtime.engine)() as db_session:  # nobody claims at once
        outbox.pagerduty_rest(
            db_session,
            order_key=rest_order_key(incident_id),
            payload={
                "incident_id": incident_id,
                "action": ESCALATE,
                "from_email": "alice@example.com",
                "actor": "Alice",
                "actor_id": "U0ALICE",
                "via": "button",
                "response_url": None,
                "text": None,
            },
            now=now,
        )
        db_session.flush()
        row = db_session.scalars(sa.select(Delivery).where(Delivery.kind == PAGERDUTY_REST)).one()
        row.claimed_by, row.claimed_until = "this test", now + timedelta(hours=1)
        row.attempts = 1
        db_session.commit()
        return Job(row.id, PAGERDUTY_REST, row.target, dict(row.payload), 1, None, created_at=now)


def _sender(service: LiveService, pacer: Pacer) -> PagerDutyActionSender:
    runtime = service.runtime
    return PagerDutyActionSender(
        sessions=runtime.sessions,
        pagerduty=runtime.pagerduty,
        people=runtime.people,
        clock=runtime.clock,
        metrics=runtime.metrics,
        pacer=pacer,
    )


def test_a_request_after_the_first_takes_a_token_of_its_own(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    job = _escalation(service, incident_id)
    # Four requests: the incident looked up by its key, read, who is on call on its
    # policy (PagerDuty's level is told by no field), then changed.
    pacer = Pacer(lambda lane: (1 / 3600, 4.0))  # four tokens, the next an hour away
    assert pacer.take(LANE)  # the worker's, for the delivery

    result = _sender(service, pacer).send(job)

    assert isinstance(result, Sent)
    assert len(pd_calls(pagerduty, "PUT")) == 1  # escalated
    assert not pacer.take(LANE)  # the reads and the change took a token each


def test_a_request_whose_token_is_far_off_sends_the_call_back_before_anything_changes(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    job = _escalation(service, incident_id)
    pacer = Pacer(lambda lane: (1 / 60.0, 1.0))  # one token, the next a minute away
    assert pacer.take(LANE)

    result = _sender(service, pacer).send(job)

    assert isinstance(result, Retry) and result.pause_target_s is None
    assert result.after_s is not None and result.after_s > 30
    assert pd_calls(pagerduty, "PUT") == []  # only a read was made: tried again later


def test_an_unattended_escalation_sent_back_for_its_token_checks_the_incident_again(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    # opsbot's own escalation keeps no level when it is sent back for its token: the
    # next attempt looks at the incident again, and someone acknowledged it meanwhile.
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    job = _escalation(service, incident_id)
    job = dataclasses.replace(job, payload={**job.payload, "via": "job", "actor_id": None})
    with service.runtime.sessions() as db_session:
        row = db_session.get(Delivery, job.id)
        assert row is not None
        row.payload = job.payload  # opsbot's escalation job's, not a person's
        incident = db_session.get(Incident, incident_id)
        assert incident is not None
        found = service.runtime.pagerduty.find_incident_by_key(incident.dedup_key)
        incident.pagerduty_incident_id = str(found["id"])  # as PagerDuty's webhook tells
        db_session.commit()
    slow = Pacer(lambda lane: (1 / 60.0, 1.0))  # the update's token a minute away
    assert slow.take(LANE)
    assert isinstance(_sender(service, slow).send(job), Retry)

    with service.runtime.sessions() as db_session:
        incident = db_session.get(Incident, incident_id)
        assert incident is not None
        incident.acknowledged_at = service.runtime.clock.now()  # in Slack, meanwhile
        db_session.commit()
        kept = db_session.get(Delivery, job.id)
        assert kept is not None
        again = dataclasses.replace(job, payload=dict(kept.payload), attempts=2)
    plenty = Pacer(lambda lane: (100.0, 10.0))
    assert plenty.take(LANE)
    _sender(service, plenty).send(again)

    assert [c["body"] for c in pd_calls(pagerduty, "PUT")] == []  # not escalated: acknowledged
