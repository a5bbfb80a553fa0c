"""The outbox's outcomes, as operators need to hear of them (an outbox observer).

Called in the transaction that records each outcome: a dead delivery is
counted in the ops channel's notice; Slack refusing the token opens the
`slack_auth` episode (and its page); the next call Slack accepts closes it.
It also remembers when Slack and PagerDuty last accepted something, for the
heartbeat and `/opsbot status`.
"""

from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy.orm import Session

from bot.config import Config
from bot.ops import notices
from bot.outbox.models import PAGERDUTY_EVENT, SLACK_MESSAGE, SLACK_REPLY
from bot.outbox.results import Dead, Job, Result, Retry, Sent, told_to_its_person

TOKEN_KINDS = frozenset({SLACK_MESSAGE, SLACK_REPLY})  # calls made with the bot's token


class DeliveryWatch:
    def __init__(self, *, config: Config) -> None:
        self.ops_channel = config.ops_channel
        self.ops_key_env = config.ops_pagerduty_routing_key_env
        self._lock = threading.Lock()
        self.last_slack_ok_at: datetime | None = None
        self.last_pagerduty_ok_at: datetime | None = None
        # Unknown at start (another instance may have seen the token refused):
        # the first call Slack accepts looks at the episode once.
        self._auth_episode_maybe_open = True

    def recorded(self, db_session: Session, job: Job, result: Result, now: datetime) -> None:
        if isinstance(result, Sent):
            if job.kind in TOKEN_KINDS:
                with self._lock:
                    self.last_slack_ok_at = now
                    maybe_open, self._auth_episode_maybe_open = self._auth_episode_maybe_open, False
                if maybe_open:
                    notices.slack_auth_back(db_session, ops_key_env=self.ops_key_env, now=now)
            elif job.kind == PAGERDUTY_EVENT:
                with self._lock:
                    self.last_pagerduty_ok_at = now
        elif isinstance(result, Retry) and result.credentials_refused:
            with self._lock:
                self._auth_episode_maybe_open = True
            notices.slack_auth_lost(
                db_session, ops_key_env=self.ops_key_env, error=result.error, now=now
            )
        elif isinstance(result, Dead) and not told_to_its_person(job):
            notices.dead_delivery(
                db_session,
                ops_channel=self.ops_channel,
                delivery_id=job.id,
                kind=job.kind,
                target=job.target,
                error=result.error,
                now=now,
            )
