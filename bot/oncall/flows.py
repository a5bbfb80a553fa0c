"""Answering who is on call, wherever the question came from, through the outbox."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.oncall import render
from bot.oncall.errors import OnCallError
from bot.oncall.service import OnCallLookup, Target
from bot.outbox import service as outbox
from bot.outbox.replies import Replies, ephemeral
from bot.pagerduty.errors import PagerDutyError
from bot.slack_text import TEXT_MAX, clip

log = logging.getLogger(__name__)


class OnCallAnswers:
    def __init__(
        self, *, sessions: sessionmaker[Session], lookup: OnCallLookup, clock: Clock
    ) -> None:
        self.sessions = sessions
        self.lookup = lookup
        self.clock = clock

    def message(self, name: str | None) -> dict[str, Any]:
        """The answer to `/oncall [name]`, or what went wrong, as a message."""
        try:
            target = self.lookup.target(name)
        except OnCallError as exc:
            return {"text": clip(str(exc), TEXT_MAX), "blocks": None}  # mrkdwn, names inert
        except PagerDutyError as exc:
            return render.unavailable_message(name or "everyone", str(exc))
        return self.report_message(target)

    def report_message(self, target: Target, *, handoff: bool = False) -> dict[str, Any]:
        try:
            report = self.lookup.report(target)
        except PagerDutyError as exc:
            log.warning("on-call lookup for %r failed: %r", target.title[:200], str(exc))
            return render.unavailable_message(target.title, str(exc))
        return render.handoff_message(report) if handoff else render.oncall_message(report)

    def respond(self, *, name: str | None, response_url: str) -> None:
        """Answer a slash command (works in channels the bot is not in, and in DMs)."""
        message = self.message(name)
        Replies(sessions=self.sessions, clock=self.clock).send(
            response_url, ephemeral(message["text"], message.get("blocks"))
        )

    def post(
        self, *, key: str, channel: str, message: dict[str, Any], thread_ts: str | None = None
    ) -> None:
        """Post under `key` (again: an update), in a thread when `thread_ts` is given."""
        if thread_ts is not None:
            message = {**message, "thread_ts": thread_ts}
        with self.sessions() as db_session:
            outbox.post_or_update(
                db_session, key=key, channel=channel, message=message, now=self.clock.now()
            )
            db_session.commit()
