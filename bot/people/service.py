"""Reading and changing PagerDuty user links. Functions add and flush; the caller commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from bot.db.statements import insert_new_row, update_rows
from bot.pagerduty.rest import PagerDutyUser
from bot.people.models import PagerDutyUserLink


def get(db_session: Session, *, slack_user_id: str) -> PagerDutyUserLink | None:
    query = select(PagerDutyUserLink).where(PagerDutyUserLink.slack_user_id == slack_user_id)
    return db_session.scalars(query).first()


def by_pagerduty_user(
    db_session: Session, *, pagerduty_user_id: str
) -> Sequence[PagerDutyUserLink]:
    """The Slack users mapped to a PagerDuty user: links made by hand first, then the newest."""
    query = (
        select(PagerDutyUserLink)
        .where(PagerDutyUserLink.pagerduty_user_id == pagerduty_user_id)
        .order_by(PagerDutyUserLink.linked.desc(), PagerDutyUserLink.checked_at.desc())
    )
    return db_session.scalars(query).all()


def save(
    db_session: Session, *, slack_user_id: str, user: PagerDutyUser, linked: bool, now: datetime
) -> PagerDutyUserLink | None:
    """Record a mapping and return what is stored: a link made by hand replaces any row,
    a lookup never replaces a link made by hand."""
    values = {
        "pagerduty_user_id": user.id,
        "pagerduty_email": user.email,
        "pagerduty_name": user.name,
        "linked": linked,
        "checked_at": now,
    }
    change = (
        update(PagerDutyUserLink)
        .where(PagerDutyUserLink.slack_user_id == slack_user_id)
        .values(**values)
    )
    if linked:
        # Insert first: a lookup that inserted the row a moment ago is then a conflict,
        # never a lost link, and the update below writes the link over it.
        made = insert_new_row(
            db_session,
            PagerDutyUserLink,
            unique="slack_user_id",
            slack_user_id=slack_user_id,
            **values,
        )
        if made is None:
            update_rows(db_session, change)
    elif not update_rows(db_session, change.where(PagerDutyUserLink.linked.is_(False))):
        # No row, or one linked by hand (which stands); a concurrent insert stands too.
        insert_new_row(
            db_session,
            PagerDutyUserLink,
            unique="slack_user_id",
            slack_user_id=slack_user_id,
            **values,
        )
    stored = select(PagerDutyUserLink).where(PagerDutyUserLink.slack_user_id == slack_user_id)
    return db_session.scalars(stored.execution_options(populate_existing=True)).first()


def confirm(db_session: Session, *, slack_user_id: str, now: datetime) -> None:
    """Note that a link made by hand still holds (its Slack account is active)."""
    update_rows(
        db_session,
        update(PagerDutyUserLink)
        .where(PagerDutyUserLink.slack_user_id == slack_user_id, PagerDutyUserLink.linked.is_(True))
        .values(checked_at=now),
    )


def remove(db_session: Session, *, slack_user_id: str, linked_too: bool) -> bool:
    """Forget a Slack user's mapping (a cached lookup only, unless `linked_too`)."""
    row = get(db_session, slack_user_id=slack_user_id)
    if row is None or (row.linked and not linked_too):
        return False
    db_session.delete(row)
    db_session.flush()
    return True


def remove_lookups(db_session: Session, *, pagerduty_user_id: str, before: datetime) -> None:
    """Forget the lookups of a PagerDuty user checked before `before`; links made by hand stay."""
    query = delete(PagerDutyUserLink).where(
        PagerDutyUserLink.pagerduty_user_id == pagerduty_user_id,
        PagerDutyUserLink.linked.is_(False),
        PagerDutyUserLink.checked_at < before,
    )
    db_session.execute(query.execution_options(synchronize_session=False))
