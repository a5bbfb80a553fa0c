"""The timeline events mirrored into an incident's own channel are shown once each.

The timeline is read in time order, which is not id order when a CloudWatch or
PagerDuty time is ahead of ours or transitions arrive swapped; what the channel has
seen is up to the highest id shown, so no event is posted twice. Real databases
(SQLite and PostgreSQL); the channel's lines are read from the outbox.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from bot.db.engine import make_sessionmaker
from bot.incidents import flows
from bot.incidents import service as incidents
from bot.incidents.models import Incident
from bot.outbox.models import SLACK_MESSAGE, Delivery

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
CHANNEL = "C0INCIDENT1"


def incident_with_a_channel(db_session: Session) -> Incident:
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
        slack_channel_id=CHANNEL,
        slack_channel_name="inc-1-prod-api-5xx",
    )


def channel_batches(db_session: Session, incident: Incident) -> list[str]:
    """The lines of the event batches queued for the incident's channel, oldest first."""
    query = (
        sa.select(Delivery)
        .where(
            Delivery.kind == SLACK_MESSAGE,
            Delivery.message_key.like(f"{incident.channel_key}:events:%"),
        )
        .order_by(Delivery.id)
    )
    return [json.dumps(d.payload["blocks"]) for d in db_session.scalars(query)]


def test_events_whose_times_run_against_their_ids_are_mirrored_once(engine: sa.Engine) -> None:
    sessions = make_sessionmaker(engine)
    with sessions() as db_session:
        incident = incident_with_a_channel(db_session)
        incident_id = incident.id
        # Recorded first, stamped later (PagerDuty's clock ahead of ours); then an
        # earlier one: the timeline shows the second above the first.
        for at, text in [(T0 + timedelta(minutes=2), "first recorded"), (T0, "second recorded")]:
            incidents.add_event(
                db_session, incident=incident, kind="note", at=at, now=T0, text=text
            )
        flows.follow_in_channel(db_session, incident=incident, now=T0)
        db_session.commit()

    with sessions() as db_session:
        incident = db_session.get_one(Incident, incident_id)
        [batch] = channel_batches(db_session, incident)
        assert batch.index("second recorded") < batch.index("first recorded")
        # Nothing new: nothing more is posted.
        flows.follow_in_channel(db_session, incident=incident, now=T0)
        db_session.commit()
        assert len(channel_batches(db_session, incident)) == 1

        # A new event is posted alone.
        incidents.add_event(
            db_session, incident=incident, kind="note", at=T0, now=T0, text="third recorded"
        )
        flows.follow_in_channel(db_session, incident=incident, now=T0)
        db_session.commit()
        batches = channel_batches(db_session, incident)
        assert len(batches) == 2
        assert "third recorded" in batches[1]
        assert "first recorded" not in batches[1] and "second recorded" not in batches[1]
