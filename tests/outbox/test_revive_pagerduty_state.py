"""A retry of abandoned PagerDuty events leaves PagerDuty in the state the alarm is in
now: only the newest event of a dedup_key goes back in line, never an older one that
would undo it (a page for an alarm resolved since, a resolve of one firing again)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.adapters.pagerduty import events_client
from bot.config import DeliverySettings
from bot.db.engine import make_sessionmaker
from bot.observability.metrics import Metrics
from bot.outbox import service as outbox
from bot.outbox.models import DEAD, PAGERDUTY_EVENT, PENDING, SENT, Delivery
from bot.outbox.pacing import Pacer
from bot.outbox.pagerduty_sender import PagerDutySender
from bot.outbox.worker import OutboxWorker
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.tls import TestCA
from tests.conftest import PD_ROUTING_KEY
from tests.support import wait_for

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=5)  # the routing key is fixed, the operator retries
REFUSED = "PagerDuty refused the event (400)"


def _events(engine: sa.Engine, *events: tuple[str, str]) -> dict[str, int]:
    """Events of dedup_key d7 by name (`action` or `action2`), each left in its status."""
    ids: dict[str, int] = {}
    with make_sessionmaker(engine)() as db:
        for minute, (action, status) in enumerate(events):
            outbox.pagerduty_event(
                db,
                routing_key_env="PD_KEY_PROD",
                dedup_key="d7",
                action=action,
                body={"payload": {"summary": "s", "source": "x", "severity": "critical"}}
                if action == "trigger"
                else {},
                now=T0 + timedelta(minutes=minute),
            )
            db.flush()
            newest = int(db.scalar(sa.select(sa.func.max(Delivery.id))) or 0)
            error = REFUSED if status == DEAD else None
            db.execute(
                sa.update(Delivery)
                .where(Delivery.id == newest)
                .values(status=status, attempts=0 if status == PENDING else 1, last_error=error)
            )
            ids[action if action not in ids else f"{action}2"] = newest
        db.commit()
    return ids


def _statuses(engine: sa.Engine) -> dict[int, str]:
    with make_sessionmaker(engine)() as db:
        return {i: str(s) for i, s in db.execute(sa.select(Delivery.id, Delivery.status))}


def _retry(engine: sa.Engine, delivery_id: int | None = None) -> outbox.Revival:
    with make_sessionmaker(engine)() as db:
        revival = outbox.revive_dead(db, now=LATER, delivery_id=delivery_id)
        db.commit()
    return revival


def test_retrying_a_page_whose_resolve_was_abandoned_too_sends_neither(
    engine: sa.Engine,
) -> None:
    ids = _events(engine, ("trigger", DEAD), ("resolve", DEAD))

    revival = _retry(engine, ids["trigger"])

    assert revival.revived == []
    [obsolete] = revival.obsolete
    assert (obsolete.delivery_id, obsolete.newer_id, obsolete.cancelled) == (
        ids["trigger"],
        ids["resolve"],
        False,
    )
    assert f"#{ids['resolve']} (resolve) came after it and is abandoned too" in obsolete.note
    assert f"retry #{ids['resolve']}" in obsolete.note
    assert _statuses(engine) == {ids["trigger"]: DEAD, ids["resolve"]: DEAD}


def test_retrying_a_page_whose_resolve_waits_for_its_window_sends_the_page_first(
    engine: sa.Engine,
) -> None:
    # The resolve, never tried, may still be withdrawn: the alarm firing again within
    # the window withdraws it, and then only the revived page says the alarm fires.
    ids = _events(engine, ("trigger", DEAD), ("resolve", PENDING))

    assert _retry(engine, ids["trigger"]).revived == [ids["trigger"]]
    with make_sessionmaker(engine)() as db:
        assert outbox.cancel_pagerduty_event(db, dedup_key="d7", action="resolve", now=LATER)
        db.commit()
    assert _statuses(engine)[ids["trigger"]] == PENDING


def test_retrying_a_page_whose_resolve_was_tried_since_sends_only_the_resolve(
    engine: sa.Engine,
) -> None:
    # A tried resolve may have reached PagerDuty: the page after it would open an
    # incident that the resolve, sent again, closes at once.
    ids = _events(engine, ("trigger", DEAD), ("resolve", PENDING))
    with make_sessionmaker(engine)() as db:
        db.execute(sa.update(Delivery).where(Delivery.id == ids["resolve"]).values(attempts=1))
        db.commit()

    revival = _retry(engine, ids["trigger"])

    assert revival.revived == []
    assert f"#{ids['resolve']} (resolve) was tried after it and is on its way" in (
        revival.obsolete[0].note
    )
    assert _statuses(engine) == {ids["trigger"]: DEAD, ids["resolve"]: PENDING}


def test_retrying_a_resolve_of_an_alarm_paged_again_since_sends_nothing(
    engine: sa.Engine,
) -> None:
    # Paged, resolved (refused), paged again by a re-ALARM (refused): the alarm fires.
    ids = _events(engine, ("trigger", SENT), ("resolve", DEAD), ("trigger", DEAD))

    assert _retry(engine, ids["resolve"]).revived == []
    assert _statuses(engine)[ids["resolve"]] == DEAD

    revival = _retry(engine)
    assert revival.revived == [ids["trigger2"]]
    assert [o.delivery_id for o in revival.obsolete] == [ids["resolve"]]


@pytest.fixture
def worker(
    engine: sa.Engine, pagerduty: PagerDutyEmulator, test_ca: TestCA
) -> Iterator[OutboxWorker]:
    client = events_client(
        PD_ROUTING_KEY, base_url=pagerduty.url, tls=test_ca.client_context(), timeout_s=5.0
    )
    worker = OutboxWorker(
        sessions=make_sessionmaker(engine),
        senders={PAGERDUTY_EVENT: PagerDutySender(lambda _env: client).send},
        pacer=Pacer(lambda lane: (100.0, 100.0)),
        settings=DeliverySettings(),
        metrics=Metrics(),
    )
    yield worker
    worker.stop()


def test_retrying_everything_after_a_bad_routing_key_leaves_the_resolved_alarm_unpaged(
    engine: sa.Engine, pagerduty: PagerDutyEmulator, worker: OutboxWorker
) -> None:
    ids = _events(engine, ("trigger", DEAD), ("resolve", DEAD))

    revival = _retry(engine)
    assert revival.revived == [ids["resolve"]]
    assert [(o.delivery_id, o.newer_id) for o in revival.obsolete] == [
        (ids["trigger"], ids["resolve"])
    ]
    worker.start()
    wait_for(lambda: _statuses(engine)[ids["resolve"]] == SENT)

    assert [e["event_action"] for e in pagerduty.events_for("d7")] == ["resolve"]
    assert pagerduty.incidents_for("d7") == []  # nobody was paged for an alarm that is over
    assert _statuses(engine)[ids["trigger"]] == DEAD
