"""Changes recorded together update the incident's message once, when they are done."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
import sqlalchemy as sa

from bot.incidents import flows
from bot.incidents import service as incidents
from bot.incidents.models import Incident
from bot.outbox.models import BULK, PERSON, SLACK_MESSAGE, Delivery
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import page
from tests.support import LiveService


def message_updates(db: sa.orm.Session) -> list[tuple[int, str]]:
    """(priority, text) of every update of a message not yet sent."""
    rows = db.scalars(
        sa.select(Delivery)
        .where(Delivery.kind == SLACK_MESSAGE, Delivery.status == "pending")
        .order_by(Delivery.id)
    )
    return [(row.priority, str(row.payload)) for row in rows]


@pytest.fixture
def paged(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> Iterator[tuple[sa.orm.Session, Incident, datetime]]:
    """A paged incident, locked in a transaction that is rolled back afterwards."""
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    runtime = service.runtime
    with runtime.sessions() as db:
        incident = incidents.lock(db, incident_id=incident_id)
        assert incident is not None
        yield db, incident, runtime.clock.now()
        db.rollback()


def test_a_click_s_changes_queue_one_update_showing_all_of_them(
    paged: tuple[sa.orm.Session, Incident, datetime],
) -> None:
    db, incident, now = paged
    with flows.message_updated_once(db, incident=incident, now=now, clicked_at=now):
        flows.acknowledge(db, incident=incident, by="<@U0ALICE>", at=now, now=now, via="x")
        db.flush()
        assert message_updates(db) == []  # nothing rendered for a state about to change
        flows.add_note(
            db,
            incident=incident,
            text="rolling back",
            by="<@U0ALICE>",
            at=now,
            now=now,
            via="x",
        )
    [(priority, text)] = message_updates(db)
    assert priority == PERSON
    assert "acknowledged by <@U0ALICE>" in text


def test_without_a_click_only_a_change_updates_the_message(
    paged: tuple[sa.orm.Session, Incident, datetime],
) -> None:
    db, incident, now = paged
    with flows.message_updated_once(db, incident=incident, now=now):
        pass
    assert message_updates(db) == []

    with flows.message_updated_once(db, incident=incident, now=now):
        flows.acknowledge(db, incident=incident, by="<@U0BOB>", at=now, now=now, via="x")
    [(priority, text)] = message_updates(db)
    assert priority == BULK
    assert "acknowledged by <@U0BOB>" in text

    # Outside the block a change updates the message as it always does.
    flows.resolve(db, incident=incident, by="<@U0BOB>", at=now, now=now, via="x")
    [(_, text)] = message_updates(db)  # folded into the one still unsent
    assert "resolved by <@U0BOB>" in text
