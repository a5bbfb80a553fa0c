"""Reading and changing pending actions. Functions add and flush; the caller commits.

Clicks lock the row (SELECT ... FOR UPDATE on PostgreSQL; SQLite takes its
write lock at BEGIN), so two people clicking at once cannot both run it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.approvals.errors import ActionNotFound, ClickRefused
from bot.approvals.models import CANCELLED, EXECUTING, EXPIRED, PENDING, PendingAction
from bot.approvals.registry import APPROVE, CANCEL, CONFIRM
from bot.slack_text import clip, code

SLACK_USER = re.compile(r"^[UW][A-Z0-9]+$")


def is_slack_user(actor: str) -> bool:
    """Whether an actor can click (a Slack user id), unlike `cli:<name>`."""
    return bool(SLACK_USER.match(actor))


def create(
    db_session: Session,
    *,
    kind: str,
    target: str,
    summary: str,
    details: list[str],
    payload: dict[str, Any],
    requested_by: str,
    channel: str,
    needs_confirmation: bool,
    required_approvals: int,
    now: datetime,
    ttl: timedelta,
) -> PendingAction:
    """Record a pending action; ValueError unless `requested_by` is a Slack user id.

    Only the requester confirms their request, and nobody approves their own:
    both compare Slack user ids, so a requester named otherwise (`cli:<name>`,
    an id in the wrong case) is nobody any click could be told apart from. The
    CLI asks as the Slack user its identity maps to (`rights.cli`).
    """
    if not is_slack_user(requested_by):
        raise ValueError(f"a request's requester must be a Slack user id, not {requested_by!r}")
    action = PendingAction(
        kind=kind,
        target=target,
        summary=clip(summary, 1000),
        details=list(details),
        payload=dict(payload),
        requested_by=requested_by,
        requested_at=now,
        channel=channel,
        needs_confirmation=needs_confirmation,
        required_approvals=max(0, required_approvals),
        approvals=[],
        status=PENDING,
        expires_at=now + ttl,
    )
    db_session.add(action)
    db_session.flush()
    return action


def get(db_session: Session, *, action_id: int, lock: bool = False) -> PendingAction | None:
    query = select(PendingAction).where(PendingAction.id == action_id)
    if lock:
        query = query.with_for_update()
    return db_session.scalars(query).first()


def get_or_raise(db_session: Session, *, action_id: int, lock: bool = False) -> PendingAction:
    action = get(db_session, action_id=action_id, lock=lock)
    if action is None:
        raise ActionNotFound(f"There is no request #{action_id}.")
    return action


def list_pending(db_session: Session, *, target: str | None = None) -> list[PendingAction]:
    query = select(PendingAction).where(PendingAction.status == PENDING)
    if target is not None:
        query = query.where(PendingAction.target == target)
    return list(db_session.scalars(query.order_by(PendingAction.id)))


def list_open(db_session: Session) -> list[PendingAction]:
    """Every action still waiting for clicks or running: each needs its expiry job."""
    query = select(PendingAction).where(PendingAction.status.in_((PENDING, EXECUTING)))
    return list(db_session.scalars(query.order_by(PendingAction.id)))


def apply_click(
    db_session: Session, *, action: PendingAction, user_id: str, decision: str, now: datetime
) -> None:
    """Record a confirm, approve or cancel; raise ClickRefused when it does not count.

    Who-is-who rules live here, whatever the kind: only the requester confirms;
    nobody approves their own request, approves twice, or approves what they
    confirmed (one person's two clicks are one person's word).
    """
    if not action.is_pending:
        raise ClickRefused(f"Request #{action.id} is already {action.status}.")
    if now >= action.expires_at:
        raise ClickRefused(f"Request #{action.id} has expired; ask again.")
    if decision == CANCEL:
        action.status = CANCELLED
        action.decided_by = user_id
        action.decided_at = now
    elif decision == CONFIRM:
        if not action.confirmation_missing:
            raise ClickRefused(f"Request #{action.id} needs no (more) confirmation.")
        if user_id != action.requested_by:
            raise ClickRefused(
                f"Only <@{action.requested_by}> can confirm their own request"
                + (": you can approve it." if action.approvals_missing else ".")
            )
        action.confirmed_by = user_id
        action.confirmed_at = now
    elif decision == APPROVE:
        if action.approvals_missing == 0:
            raise ClickRefused(f"Request #{action.id} needs no (more) approval.")
        if user_id == action.requested_by:
            raise ClickRefused(
                "You cannot approve your own request: a different person must approve it."
            )
        if user_id in action.approvers:
            raise ClickRefused("You have already approved this request.")
        if user_id == action.confirmed_by:
            raise ClickRefused("You confirmed this request: a different person must approve it.")
        action.approvals = [*action.approvals, {"user": user_id, "at": now.isoformat()}]
    else:
        raise ClickRefused(f"Unknown decision {code(decision)}.")
    if action.is_pending and action.ready:
        action.status = EXECUTING
        action.decided_by = user_id
        action.decided_at = now
    db_session.flush()


def would_complete(action: PendingAction, *, user_id: str, decision: str) -> bool:
    """Whether this click, were it to count (see `apply_click`), is the last one needed."""
    if not action.is_pending:
        return False
    if decision == CONFIRM:
        mine = user_id == action.requested_by
        return mine and action.confirmation_missing and action.approvals_missing == 0
    if decision == APPROVE:
        others = (action.requested_by, action.confirmed_by, *action.approvers)
        return (
            user_id not in others
            and not action.confirmation_missing
            and action.approvals_missing == 1
        )
    return False


def finish(db_session: Session, *, action: PendingAction, status: str, result: str) -> None:
    action.status = status
    action.result = clip(result, 4000)
    db_session.flush()


def expire(db_session: Session, *, action: PendingAction, now: datetime) -> bool:
    """Expire a pending action whose time is up; False if it was decided or is not due."""
    if not action.is_pending or now < action.expires_at:
        return False
    action.status = EXPIRED
    action.decided_at = now
    db_session.flush()
    return True


def claim(db_session: Session, *, action: PendingAction, until: datetime) -> None:
    """Claim an action that goes executing for its run, until `until` (see `renew_claim`)."""
    action.expires_at = until
    db_session.flush()


def renew_claim(db_session: Session, *, action_id: int, until: datetime) -> bool:
    """Extend the claim of a run still executing; False once it is not executing any more."""
    result = db_session.execute(
        update(PendingAction)
        .where(PendingAction.id == action_id, PendingAction.status == EXECUTING)
        .values(expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def is_stale_execution(action: PendingAction, *, now: datetime) -> bool:
    """Executing, and its run's claim lapsed: the process running it is gone."""
    return action.status == EXECUTING and now >= action.expires_at
