"""received_messages: the SNS messages done with are forgotten after KEEP_SNS, at start."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from bot.alarms.models import PENDING, ReceivedMessage
from bot.inbound import prune
from bot.inbound.prune import KEEP_SNS, prune_receipts
from tests.support import LiveService


def add(service: LiveService, message_id: str, *, age: timedelta, outcome: str) -> None:
    with service.runtime.sessions() as db:
        db.add(
            ReceivedMessage(
                message_id=message_id,
                via="sqs",
                topic_arn=None,
                kind="alarm",
                subject=None,
                body="{}",
                outcome=outcome,
                received_at=service.runtime.clock.now() - age,
            )
        )
        db.commit()


def kept(service: LiveService) -> set[str]:
    with service.runtime.sessions() as db:
        return set(db.scalars(sa.select(ReceivedMessage.message_id)))


@pytest.mark.parametrize("slice_size", [1000, 2])
def test_old_messages_done_with_are_forgotten_and_pending_and_recent_ones_kept(
    service: LiveService, monkeypatch: pytest.MonkeyPatch, slice_size: int
) -> None:
    monkeypatch.setattr(prune, "SNS_SLICE", slice_size)
    old = KEEP_SNS + timedelta(days=1)
    for n in range(3):
        add(service, f"old-{n}", age=old, outcome="new incident")
    add(service, "old-pending", age=old, outcome=PENDING)
    add(service, "old-late", age=old - timedelta(hours=1), outcome="late transition")
    add(service, "recent", age=KEEP_SNS - timedelta(days=1), outcome="new incident")
    add(service, "now", age=timedelta(0), outcome="duplicate")

    prune_receipts(service.runtime.sessions, service.runtime.clock)

    assert kept(service) == {"old-pending", "recent", "now"}
