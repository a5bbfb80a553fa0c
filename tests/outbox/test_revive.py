"""Abandoned deliveries put back in line (`opsbot outbox retry`, the /opsbot retry button):
never ahead of what a newer delivery of theirs already did, never without the look
that finds an earlier attempt that landed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.cli import main
from bot.db.engine import make_sessionmaker
from bot.outbox import service as outbox
from bot.outbox.models import Delivery, SlackMessage
from bot.outbox.slack_sender import METADATA_EVENT
from bot.slack_metadata import marked
from sandbox.slack import SlackEmulator
from tests.outbox.cli_admin import as_cli_admin
from tests.support import LiveService, wait_for

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def _set(db: sa.orm.Session, delivery_id: int, **values: object) -> None:
    db.execute(sa.update(Delivery).where(Delivery.id == delivery_id).values(**values))


def _newest(db: sa.orm.Session) -> int:
    return int(db.scalar(sa.select(sa.func.max(Delivery.id))) or 0)


def _status(db: sa.orm.Session, delivery_id: int) -> str:
    return str(db.scalar(sa.select(Delivery.status).where(Delivery.id == delivery_id)))


def _message_state(db: sa.orm.Session, text: str, at: datetime) -> int:
    outbox.post_or_update(db, key="incident:7", channel="C0ALERTS", message={"text": text}, now=at)
    db.flush()
    return _newest(db)


def test_an_abandoned_update_a_newer_one_replaced_is_cancelled_not_sent(
    engine: sa.Engine,
) -> None:
    with make_sessionmaker(engine)() as db:
        posted = _message_state(db, "ALARM", T0)
        _set(db, posted, status="sent", attempts=1)
        db.execute(sa.update(SlackMessage).values(ts="1.0001", channel_id="C0ALERTS"))
        acked = _message_state(db, "acknowledged by alice", T0 + timedelta(minutes=1))
        _set(db, acked, status="dead", attempts=8, last_error="some_new_error")
        resolved = _message_state(db, "RESOLVED by bob", T0 + timedelta(minutes=2))
        _set(db, resolved, status="sent", attempts=1)
        db.commit()

        # As `opsbot outbox retry` and the retry button ask for it.
        assert outbox.revive_dead(db, now=T0 + timedelta(hours=1)).revived == []
        db.commit()

        assert _status(db, acked) == "cancelled"  # "acked" never goes over "RESOLVED"
        pending = db.scalar(sa.select(sa.func.count()).where(Delivery.status == "pending"))
        assert pending == 0


def test_the_answer_names_the_newer_delivery_that_made_an_abandoned_one_obsolete(
    engine: sa.Engine,
) -> None:
    with make_sessionmaker(engine)() as db:
        posted = _message_state(db, "ALARM", T0)
        _set(db, posted, status="dead", attempts=3, last_error="fatal_error")
        newer = _message_state(db, "OK", T0 + timedelta(minutes=1))
        db.commit()

        revival = outbox.revive_dead(db, now=T0 + timedelta(hours=1), delivery_id=posted)
        db.commit()

        assert revival.revived == []
        [obsolete] = revival.obsolete
        assert (obsolete.delivery_id, obsolete.newer_id, obsolete.cancelled) == (
            posted,
            newer,
            True,
        )
        assert f"#{posted}" in obsolete.note and f"#{newer}" in obsolete.note
        assert "on its way" in obsolete.note


def test_an_abandoned_trigger_is_refused_after_its_resolve_went_out(engine: sa.Engine) -> None:
    with make_sessionmaker(engine)() as db:
        for action, minute in (("trigger", 0), ("resolve", 3)):
            outbox.pagerduty_event(
                db,
                routing_key_env="PD_KEY",
                dedup_key="d7",
                action=action,
                body={},
                now=T0 + timedelta(minutes=minute),
            )
            db.flush()
            if action == "trigger":
                trigger = _newest(db)
                _set(db, trigger, status="dead", attempts=1, last_error="refused (400)")
        resolve = _newest(db)
        _set(db, resolve, status="sent", attempts=1)
        db.commit()

        assert (
            outbox.revive_dead(db, now=T0 + timedelta(hours=1), delivery_id=trigger).revived == []
        )
        db.commit()
        assert _status(db, trigger) == "dead"  # a page now would open an incident nothing resolves

        [refused] = outbox.revive_dead(db, now=T0 + timedelta(hours=1)).obsolete
        assert not refused.cancelled and refused.newer_id == resolve
        assert f"#{resolve} (resolve) went out after it" in refused.note


def test_an_abandoned_update_with_nothing_newer_is_sent_again_in_its_place(
    engine: sa.Engine,
) -> None:
    with make_sessionmaker(engine)() as db:
        posted = _message_state(db, "ALARM", T0)
        _set(db, posted, status="dead", attempts=8, last_error="fatal_error")
        db.commit()

        revival = outbox.revive_dead(db, now=T0 + timedelta(hours=1))
        db.commit()

        assert (revival.revived, revival.obsolete) == ([posted], [])
        row = db.get(Delivery, posted)
        assert row is not None
        # Tried before: its next attempt (2) looks for the one that may have landed.
        assert (row.status, row.attempts) == ("pending", 1)


def test_an_abandoned_post_that_had_landed_is_found_not_posted_again(
    service: LiveService,
    slack: SlackEmulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    with service.runtime.sessions() as db:
        outbox.post_or_update(
            db, key="incident:9", channel="C0PRODALERTS", message={"text": "ALARM"}, now=T0
        )
        db.flush()
        delivery = _newest(db)
        # Its first attempt landed, its answer lost; later ones failed until it was abandoned.
        _set(db, delivery, status="dead", attempts=8, last_error="fatal_error")
        db.commit()
    slack.add_message(channel="C0PRODALERTS", text="ALARM")
    slack.channel_messages("C0PRODALERTS")[0].metadata = marked(
        METADATA_EVENT, {"delivery": delivery}
    )

    # `outbox retry` acts as an admin, as the Retry button needs.
    as_cli_admin(
        monkeypatch, tmp_path, database_url=service.runtime.settings.effective_database_url
    )
    assert main(["outbox", "retry"]) == 0
    assert "1 abandoned deliveries are pending again" in capsys.readouterr().out

    def sent() -> bool:
        with service.runtime.sessions() as db:
            return _status(db, delivery) == "sent"

    wait_for(sent, timeout_s=20)
    assert len(slack.channel_messages("C0PRODALERTS")) == 1
    assert slack.calls_to("conversations.history")
