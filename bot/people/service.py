"""Reading and changing PagerDuty user links. Functions add and flush; the caller commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.pagerduty.rest import PagerDutyUser
from bot.people.models import PagerDutyUserLink


def get(db_session: Session, *, slack_user_id: str) -> PagerDutyUserLink | None:
    query = select(PagerDutyUserLink).where(PagerDutyUserLink.slack_user_id == slack_user_id)
    return db_session.scalars(query).first()


def by_pagerduty_user(db_session: Session, *, pagerduty_user_id: str) -> PagerDutyUserLink | None:
    """The Slack user of a PagerDuty user: a hand-made link first, then the newest lookup."""
    query = (
        select(PagerDutyUserLink)
        .where(PagerDutyUserLink.pagerduty_user_id == pagerduty_user_id)
        .order_by(PagerDutyUserLink.linked.desc(), PagerDutyUserLink.checked_at.desc())
        .limit(1)
    )
    return db_session.scalars(query).first()


def save(
    db_session: Session, *, slack_user_id: str, user: PagerDutyUser, linked: bool, now: datetime
) -> PagerDutyUserLink:
    """Record a mapping; a lookup never replaces a link made by hand."""
    row = get(db_session, slack_user_id=slack_user_id)
    if row is not None and row.linked and not linked:
        return row
    if row is None:
        row = PagerDutyUserLink(slack_user_id=slack_user_id)
        db_session.add(row)
    row.pagerduty_user_id = user.id
    row.pagerduty_email = user.email
    row.pagerduty_name = user.name
    row.linked = linked
    row.checked_at = now
    db_session.flush()
    return row


def remove(db_session: Session, *, slack_user_id: str, linked_too: bool) -> bool:
    """Forget a Slack user's mapping (a cached lookup only, unless `linked_too`)."""
    row = get(db_session, slack_user_id=slack_user_id)
    if row is None or (row.linked and not linked_too):
        return False
    db_session.delete(row)
    db_session.flush()
    return True
