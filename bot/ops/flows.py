"""What people do about opsbot's own state: see it, and retry a dead delivery, from Slack or
the CLI (`opsbot outbox retry`), through the same right check and audit line."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.audit import service as audit
from bot.clock import Clock
from bot.commands import RIGHT_NAMES, Right
from bot.observability.outbox_gauges import OutboxGauges
from bot.ops import render
from bot.ops.status import Status, gather
from bot.outbox import service as outbox
from bot.outbox.replies import ephemeral, reply
from bot.outbox.service import Revival
from bot.rights.errors import RightMissing, SlackFactsUnavailable
from bot.rights.service import Rights

log = logging.getLogger(__name__)

RETRY_AUDIT = "outbox.retry"
STATUS_AUDIT = "ops.status"
STATUS_TARGET = "opsbot:status"
REFUSED = "refused"


class OpsStatus:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        gauges: OutboxGauges,
        rights: Rights,
        clock: Clock,
        identity: Callable[[], tuple[str, str, str]],  # version, commit, config version
        heartbeat_s: float,
    ) -> None:
        self.sessions = sessions
        self.gauges = gauges
        self.rights = rights
        self.clock = clock
        self.identity = identity
        self.heartbeat_s = heartbeat_s

    def status(self) -> Status:
        version, commit, config_version = self.identity()
        backlog = self.gauges.backlog()
        with self.sessions() as db_session:
            return gather(
                db_session,
                backlog=backlog,
                now=self.clock.now(),
                version=version,
                commit=commit,
                config_version=config_version,
                heartbeat_s=self.heartbeat_s,
            )

    def show(self, *, user_id: str, response_url: str) -> None:
        """`/opsbot status`, answered to the person only; it needs full membership of the
        workspace, and a guest refused (or Slack unable to say who asks) is audited."""
        try:
            guest = self.rights.workspace.member(user_id).is_guest
        except SlackFactsUnavailable as exc:
            text = f"opsbot cannot check who you are ({exc}). Try again in a minute."
            self._not_shown(
                user_id,
                response_url,
                outcome="failed",
                text=text,
                detail={"unverifiable": str(exc)},
            )
            return
        if guest:
            text = f"Guests may not see opsbot's status: that needs {RIGHT_NAMES[Right.MEMBER]}."
            self._not_shown(
                user_id,
                response_url,
                outcome=REFUSED,
                text=text,
                detail={"right": str(Right.MEMBER)},
            )
            return
        message = render.status_message(self.status())
        with self.sessions() as db_session:
            body = ephemeral(message["text"], message["blocks"])
            reply(db_session, response_url=response_url, body=body, now=self.clock.now())
            db_session.commit()

    def _not_shown(
        self, user_id: str, response_url: str, *, outcome: str, text: str, detail: dict[str, Any]
    ) -> None:
        """Tell the person why, alone, and audit it (`ops.status`, refused or failed)."""
        # Slack failing is the operator's to look at; a guest refused is only recorded.
        log.log(
            logging.WARNING if outcome == "failed" else logging.INFO,
            "/opsbot status not shown to %s (%s)",
            user_id,
            outcome,
            extra={"slack_user": user_id, "outcome": outcome, **detail},
        )
        now = self.clock.now()
        with self.sessions() as db_session:
            audit.record(
                db_session,
                at=now,
                actor=user_id,
                action=STATUS_AUDIT,
                target=STATUS_TARGET,
                outcome=outcome,
                detail={"reason": text, **detail},
            )
            reply(db_session, response_url=response_url, body=ephemeral(text), now=now)
            db_session.commit()

    def retry(self, *, user_id: str, delivery_id: int, response_url: str | None) -> bool:
        """The Retry button: `retry_dead` for the person who clicked it."""
        retried = retry_dead(
            self.sessions,
            self.rights,
            now=self.clock.now(),
            actor=user_id,
            user_id=user_id,
            delivery_id=delivery_id,
            response_url=response_url,
        )
        return bool(retried.revived)


@dataclass(frozen=True)
class Retried:
    """What a retry did: its audited outcome, what the person is told, what went back in line."""

    outcome: str  # ok, obsolete, nothing to do, refused
    text: str
    revived: list[int]

    @property
    def refused(self) -> bool:
        return self.outcome == REFUSED


def retry_dead(
    sessions: sessionmaker[Session],
    rights: Rights,
    *,
    now: datetime,
    actor: str,
    user_id: str,
    delivery_id: int | None,
    response_url: str | None = None,
) -> Retried:
    """Put a dead delivery (None: every one) back in line if `user_id` is an admin, else refuse.

    What goes back is `outbox.revive_dead`'s choice: one that a newer delivery of its
    message or PagerDuty dedup_key makes obsolete is not sent, and the answer names
    that newer one (a page whose resolve was abandoned too stays abandoned; the
    resolve is what to retry, so that PagerDuty ends in the alarm's state now).
    `actor` is who asked, as the audit names them: the Slack user who clicked, or
    `cli:<identity>` for the CLI acting as `user_id`. Audited either way.
    """
    doing = "retry every abandoned delivery"
    if delivery_id is not None:
        doing = f"retry delivery #{delivery_id}"
    try:
        rights.require_admin(user_id, doing=doing)
    except RightMissing as exc:
        return refuse_retry(
            sessions,
            now=now,
            actor=actor,
            delivery_id=delivery_id,
            error=exc,
            user_id=user_id,
            response_url=response_url,
        )
    with sessions() as db_session:
        revival = outbox.revive_dead(db_session, now=now, delivery_id=delivery_id)
        retried = _retried(revival, delivery_id)
        detail: dict[str, Any] = {} if actor == user_id else {"slack_user": user_id}
        if delivery_id is None:  # counts: every dead delivery may be thousands
            detail["revived"] = len(revival.revived)
            detail["obsolete"] = len(revival.obsolete)
        audit.record(
            db_session,
            at=now,
            actor=actor,
            action=RETRY_AUDIT,
            target=_target(delivery_id),
            outcome=retried.outcome,
            detail=detail or None,
        )
        if response_url:
            reply(db_session, response_url=response_url, body=ephemeral(retried.text), now=now)
        db_session.commit()
    log.info(
        "delivery %s retried by %s",
        "(all)" if delivery_id is None else delivery_id,
        actor,
        extra={
            "delivery": delivery_id,
            "actor": actor,
            "slack_user": user_id,
            "retried": len(retried.revived),
            "outcome": retried.outcome,
        },
    )
    return retried


def refuse_retry(
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    actor: str,
    delivery_id: int | None,
    error: RightMissing,
    user_id: str | None = None,
    response_url: str | None = None,
) -> Retried:
    """Audit a retry refused for `error` (whose text names the missing right); nothing changes.

    `user_id`: the Slack user whose right was missing; None when the asker has none
    (a CLI identity that `rights.cli` does not map).
    """
    log.warning(
        "retry of delivery %s refused for %s: %s missing",
        "(all)" if delivery_id is None else delivery_id,
        actor,
        error.right,
        extra={
            "delivery": delivery_id,
            "actor": actor,
            "slack_user": user_id,
            "right": error.right,
        },
    )
    detail = {"reason": str(error), "right": error.right}
    if user_id is not None and user_id != actor:
        detail["slack_user"] = user_id
    with sessions() as db_session:
        audit.record(
            db_session,
            at=now,
            actor=actor,
            action=RETRY_AUDIT,
            target=_target(delivery_id),
            outcome=REFUSED,
            detail=detail,
        )
        if response_url:
            reply(db_session, response_url=response_url, body=ephemeral(str(error)), now=now)
        db_session.commit()
    return Retried(outcome=REFUSED, text=str(error), revived=[])


def _target(delivery_id: int | None) -> str:
    return "delivery:*" if delivery_id is None else f"delivery:{delivery_id}"


def _retried(revival: Revival, delivery_id: int | None) -> Retried:
    """The outcome and the answer: one delivery as the button says it, every one as a count."""
    revived, notes = revival.revived, [o.note for o in revival.obsolete]
    if delivery_id is not None:
        if revived:
            text = f"Delivery #{delivery_id} is pending again; it goes out shortly."
            return Retried(outcome="ok", text=text, revived=revived)
        if notes:
            return Retried(outcome="obsolete", text=notes[0], revived=[])
        text = f"Delivery #{delivery_id} is not abandoned (any more): nothing to retry."
        return Retried(outcome="nothing to do", text=text, revived=[])
    if not revived and not notes:
        text = "No delivery is abandoned: nothing to retry."
        return Retried(outcome="nothing to do", text=text, revived=[])
    count = f"{len(revived)} abandoned deliveries are pending again (a running opsbot sends them)"
    text = "\n".join([count, *notes])
    return Retried(outcome="ok" if revived else "obsolete", text=text, revived=revived)
