"""An incident's channel gets its timeline's lines in turn, and waits for nobody else's.

Each call that mirrors events queues one batch, its own message: a send that fails
(a 503, a timeout) and waits to try again holds back the batches after it, so the
channel never reads "resolved" above "acknowledged"; another incident's channel is
not held back meanwhile. The real outbox worker on real databases (SQLite and
PostgreSQL), with a Slack sender that refuses a batch's first try.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from bot.clock import SystemClock
from bot.config import DeliverySettings
from bot.db.engine import make_sessionmaker
from bot.incidents import flows
from bot.incidents import service as incidents
from bot.incidents.models import Incident
from bot.observability.metrics import Metrics
from bot.outbox.models import SLACK_MESSAGE
from bot.outbox.pacing import Pacer
from bot.outbox.results import Job, Result, Retry, Sent
from bot.outbox.worker import OutboxWorker
from tests.support import wait_for

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def incident_with_a_channel(db_session: Session, channel: str) -> Incident:
    return incidents.create(
        db_session,
        now=T0,
        source="alarm",
        title="prod-api-5xx",
        alarm_name="prod-api-5xx",
        route_name="prod",
        channel="C0PRODALERTS",
        severity="critical",
        alarm_state="ALARM",
        slack_channel_id=channel,
        slack_channel_name=f"inc-{channel.lower()}",
    )


def mirrored(db_session: Session, incident: Incident, text: str, minute: int) -> str:
    """One event mirrored into the incident's channel: the key of the batch queued."""
    incidents.add_event(
        db_session,
        incident=incident,
        kind="note",
        at=T0 + timedelta(minutes=minute),
        now=T0,
        text=text,
    )
    flows.follow_in_channel(db_session, incident=incident, now=T0)
    event_id = incident.channel_event_id
    return f"{incident.channel_key}:events:{event_id}-{event_id}"


def test_a_batch_waiting_to_try_again_holds_back_its_channels_next_but_no_other(
    engine: sa.Engine,
) -> None:
    sessions = make_sessionmaker(engine)
    with sessions() as db_session:
        first = incident_with_a_channel(db_session, "C0INCIDENT1")
        other = incident_with_a_channel(db_session, "C0INCIDENT2")
        acknowledged = mirrored(db_session, first, "acknowledged by Alice", 1)
        resolved = mirrored(db_session, first, "resolved by Alice", 2)
        elsewhere = mirrored(db_session, other, "another incident's line", 1)
        db_session.commit()

    sent: list[str] = []
    lock = threading.Lock()

    def slack(job: Job) -> Result:
        assert job.message is not None
        key = job.message.key
        with lock:
            # The first batch's first try fails; it is tried again only once the other
            # incident's line is out, which must not wait for it.
            if key == acknowledged and (job.attempts == 1 or elsewhere not in sent):
                return Retry(error="503 from Slack", after_s=0.5)
            sent.append(key)
        return Sent(ts=f"{len(sent)}.000", channel_id=job.message.channel)

    worker = OutboxWorker(
        sessions=sessions,
        senders={SLACK_MESSAGE: slack},
        pacer=Pacer(lambda lane: (100.0, 100.0)),
        settings=DeliverySettings(),
        metrics=Metrics(),
        clock=SystemClock(),
    )
    worker.start()
    try:
        wait_for(lambda: len(sent) == 3)
    finally:
        worker.stop()

    assert sent.index(acknowledged) < sent.index(resolved)
    assert sent.index(elsewhere) < sent.index(acknowledged)
