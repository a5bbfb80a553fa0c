"""A person's PagerDuty call that ends dead was told to that person in the incident's
thread: it is counted, but announces and pages nothing. opsbot's own escalation,
which nobody asked for, has no such person: its death reaches operators."""

from __future__ import annotations

import sqlalchemy as sa

from bot.clock import ManualClock
from bot.db.engine import make_sessionmaker
from bot.observability.metrics import Metrics
from bot.outbox import service as outbox
from bot.outbox.models import DEAD, PAGERDUTY_REST, Delivery, SlackMessage
from bot.outbox.results import Dead, Job, Result
from tests.outbox.test_lease_lost import _worker
from tests.support import wait_for


def test_a_person_s_dead_call_pages_nobody_but_opsbot_s_own_escalation_does(
    engine: sa.Engine,
) -> None:
    clock = ManualClock()
    sessions = make_sessionmaker(engine)
    with sessions() as db_session:
        for incident_id, via in ((1, "button"), (2, "job")):
            outbox.pagerduty_rest(
                db_session,
                order_key=f"pd-rest:{incident_id}",
                payload={"incident_id": incident_id, "action": "escalate", "via": via},
                now=clock.now(),
            )
        db_session.commit()

    def refused(_job: Job) -> Result:
        return Dead(error="PagerDuty refused: Escalation level 3 does not exist")

    metrics = Metrics()
    worker = _worker(engine, "instance-a", refused, clock, metrics, kind=PAGERDUTY_REST)
    worker.start()
    try:

        def both_dead() -> bool:
            with sessions() as db_session:
                query = sa.select(Delivery.status).where(Delivery.kind == PAGERDUTY_REST)
                statuses = db_session.scalars(query).all()
            return list(statuses) == [DEAD, DEAD]

        wait_for(both_dead)
    finally:
        worker.stop()

    counted = metrics.registry.get_sample_value(
        "opsbot_deliveries_total", {"target": "pagerduty_rest", "outcome": "dead"}
    )
    assert counted == 2
    assert metrics.take_interval().deliveries_dead == 1  # opsbot's escalation only
    with sessions() as db_session:
        notices = db_session.scalars(sa.select(SlackMessage.key)).all()
    assert len(notices) == 1  # the ops channel hears of the escalation, not the click
