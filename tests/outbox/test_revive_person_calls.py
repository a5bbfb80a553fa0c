"""A person's PagerDuty call that gave up was told to that person as failed: `opsbot
outbox retry` (every abandoned delivery, or that one by id) never sends it again
later in their name; it is cancelled, and the answer says why. opsbot's own
escalation, which nobody was told about, is still put back in line."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.cli import main
from bot.db.engine import make_sessionmaker
from bot.incidents import render
from bot.outbox import service as outbox
from bot.outbox.models import CANCELLED, DEAD, PAGERDUTY_REST, PENDING, Delivery
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import click, page, pd_calls, responses_to
from tests.outbox.cli_admin import as_cli_admin
from tests.support import LiveService, wait_for


def _dead_call(service: LiveService) -> int | None:
    with service.runtime.sessions() as db:
        query = sa.select(Delivery.id).where(
            Delivery.kind == PAGERDUTY_REST, Delivery.status == DEAD
        )
        return db.scalars(query).first()


def _status(service: LiveService, delivery_id: int) -> str:
    with service.runtime.sessions() as db:
        return str(db.scalar(sa.select(Delivery.status).where(Delivery.id == delivery_id)))


@pytest.mark.parametrize("by_id", [False, True], ids=["all", "by-id"])
def test_a_persons_failed_resolve_told_to_them_is_not_sent_again_by_a_retry(
    service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    by_id: bool,
) -> None:
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    pagerduty.faults.fail_for(600, status=503, calls=("/incidents",))
    url = slack.response_url()
    click(service, render.RESOLVE, str(incident_id), response_url=url)
    [told] = wait_for(lambda: responses_to(slack, url), timeout_s=60)
    assert "Could not resolve" in str(told.get("text"))
    dead = wait_for(lambda: _dead_call(service))
    pagerduty.faults.clear()  # the outage is over; the operator follows the runbook

    as_cli_admin(
        monkeypatch, tmp_path, database_url=service.runtime.settings.effective_database_url
    )
    assert main(["outbox", "retry", *(["--id", str(dead)] if by_id else [])]) == 0
    service.runtime.outbox.wake()

    answer = capsys.readouterr().out
    if not by_id:
        assert "0 abandoned deliveries are pending again" in answer
    assert f"delivery #{dead} (" in answer and "was told it failed" in answer
    assert _status(service, dead) == CANCELLED  # out of the dead list: it is settled
    time.sleep(2)  # a revived call would have gone out by now: the worker was woken
    assert pd_calls(pagerduty, "PUT") == []
    [pd_incident] = pagerduty.incidents.values()
    assert pd_incident["status"] == "triggered"
    assert responses_to(slack, url) == [told]  # nothing more said in their name


def test_opsbots_own_escalation_that_gave_up_is_still_put_back_in_line(
    engine: sa.Engine,
) -> None:
    now = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    with make_sessionmaker(engine)() as db:
        for incident_id, via in ((1, "button"), (2, "job")):
            outbox.pagerduty_rest(
                db,
                order_key=f"pd-rest:{incident_id}",
                payload={"incident_id": incident_id, "action": "escalate", "via": via},
                now=now,
            )
        db.execute(sa.update(Delivery).values(status=DEAD, attempts=24))
        db.commit()
        person, job = db.scalars(sa.select(Delivery.id).order_by(Delivery.id)).all()

        revival = outbox.revive_dead(db, now=now)
        db.commit()

        assert revival.revived == [job]
        [told] = revival.obsolete
        assert (told.delivery_id, told.newer_id, told.cancelled) == (person, None, True)
        assert db.scalar(sa.select(Delivery.status).where(Delivery.id == job)) == PENDING
