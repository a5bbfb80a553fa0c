"""What people do about opsbot's own state from Slack: see it, retry a dead delivery."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from bot.audit import service as audit
from bot.clock import Clock
from bot.observability.outbox_gauges import OutboxGauges
from bot.ops import render
from bot.ops.status import Status, gather
from bot.outbox import service as outbox
from bot.outbox.replies import ephemeral, reply
from bot.rights.errors import RightMissing, SlackFactsUnavailable
from bot.rights.service import Rights

log = logging.getLogger(__name__)


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
        """`/opsbot status`, answered to the person only; guests are not shown it."""
        try:
            guest = self.rights.workspace.member(user_id).is_guest
        except SlackFactsUnavailable as exc:
            body = ephemeral(f"opsbot cannot check who you are ({exc}). Try again in a minute.")
        else:
            if guest:
                body = ephemeral("Guests may not see opsbot's status.")
            else:
                message = render.status_message(self.status())
                body = ephemeral(message["text"], message["blocks"])
        with self.sessions() as db_session:
            reply(db_session, response_url=response_url, body=body, now=self.clock.now())
            db_session.commit()

    def retry(self, *, user_id: str, delivery_id: int, response_url: str | None) -> bool:
        """Put a dead delivery back in line, for an admin; anyone else is refused (audited)."""
        now = self.clock.now()
        target = f"delivery:{delivery_id}"
        try:
            self.rights.require_admin(user_id, doing=f"retry delivery #{delivery_id}")
        except RightMissing as exc:
            log.warning(
                "retry of delivery %s refused for %s",
                delivery_id,
                user_id,
                extra={"delivery": delivery_id, "slack_user": user_id},
            )
            with self.sessions() as db_session:
                audit.record(
                    db_session,
                    at=now,
                    actor=user_id,
                    action="outbox.retry",
                    target=target,
                    outcome="refused",
                    detail={"reason": str(exc)},
                )
                if response_url:
                    reply(db_session, response_url=response_url, body=ephemeral(str(exc)), now=now)
                db_session.commit()
            return False
        with self.sessions() as db_session:
            revival = outbox.revive_dead(db_session, now=now, delivery_id=delivery_id)
            count = len(revival.revived)
            if count:
                outcome = "ok"
                text = f"Delivery #{delivery_id} is pending again; it goes out shortly."
            elif revival.obsolete:
                outcome, text = "obsolete", revival.obsolete[0].note
            else:
                outcome = "nothing to do"
                text = f"Delivery #{delivery_id} is not abandoned (any more): nothing to retry."
            audit.record(
                db_session,
                at=now,
                actor=user_id,
                action="outbox.retry",
                target=target,
                outcome=outcome,
            )
            if response_url:
                reply(db_session, response_url=response_url, body=ephemeral(text), now=now)
            db_session.commit()
        log.info(
            "delivery %s retried by %s",
            delivery_id,
            user_id,
            extra={"delivery": delivery_id, "slack_user": user_id, "retried": count},
        )
        return bool(count)
