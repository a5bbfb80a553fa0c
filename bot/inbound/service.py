"""Claiming inbound deliveries by id. Functions add and flush; the caller commits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.db.statements import update_rows
from bot.inbound.models import DONE, PROCESSING, InboundReceipt

EXPIRED = datetime(1970, 1, 1, tzinfo=UTC)


def seen(db_session: Session, *, source: str, key: str) -> bool:
    query = select(InboundReceipt.id).where(
        InboundReceipt.source == source, InboundReceipt.key == key
    )
    return db_session.scalar(query) is not None


def record(db_session: Session, *, source: str, key: str, now: datetime) -> None:
    """Note a delivery as handled, in the caller's transaction.

    A concurrent or earlier delivery with the same id makes the flush (or the
    commit) fail with IntegrityError: the caller rolls back and answers "duplicate".
    """
    db_session.add(InboundReceipt(source=source, key=key, status=DONE, received_at=now))
    db_session.flush()


def claim(db_session: Session, *, source: str, key: str, now: datetime, lease_s: float) -> bool:
    """Take a delivery to work on, in its own committed transaction; False if it is taken.

    True for the first delivery, and for a retry whose earlier attempt neither
    finished nor is still within its lease (it died): that retry is processed
    instead of dropped.
    """
    until = now + timedelta(seconds=lease_s)
    try:
        with db_session.begin_nested():
            db_session.add(
                InboundReceipt(
                    source=source, key=key, status=PROCESSING, lease_until=until, received_at=now
                )
            )
        return True
    except IntegrityError:
        pass
    taken_over = update_rows(
        db_session,
        update(InboundReceipt)
        .where(
            InboundReceipt.source == source,
            InboundReceipt.key == key,
            InboundReceipt.status == PROCESSING,
            InboundReceipt.lease_until < now,
        )
        .values(lease_until=until),
    )
    return taken_over == 1


def complete(db_session: Session, *, source: str, key: str) -> None:
    """Mark a claimed delivery done: every later retry of it is a duplicate."""
    update_rows(
        db_session,
        update(InboundReceipt)
        .where(InboundReceipt.source == source, InboundReceipt.key == key)
        .values(status=DONE, lease_until=None),
    )


def release(db_session: Session, *, source: str, key: str) -> None:
    """Give a claim back after a failure, so that Slack's next retry is processed."""
    update_rows(
        db_session,
        update(InboundReceipt)
        .where(
            InboundReceipt.source == source,
            InboundReceipt.key == key,
            InboundReceipt.status == PROCESSING,
        )
        .values(lease_until=EXPIRED),
    )
