"""Ephemeral answers to a slash command or a click, through its response_url, via the outbox."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.outbox import service as outbox


def ephemeral(text: str, blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"response_type": "ephemeral", "replace_original": False, "text": text}
    if blocks:
        body["blocks"] = blocks
    return body


def order_key(response_url: str) -> str:
    """The order of a request's answers. A digest, not the URL: the key is logged and
    shown, and a response_url lets whoever holds it post in its channel."""
    return "respond:" + hashlib.sha256(response_url.encode()).hexdigest()[:32]


def reply(db_session: Session, *, response_url: str, body: dict[str, Any], now: datetime) -> None:
    """Answer in the caller's transaction; answers to one request go out in order."""
    outbox.respond(
        db_session,
        response_url=response_url,
        body=body,
        order_key=order_key(response_url),
        now=now,
    )


class Replies:
    """For answers that are not part of another unit of work."""

    def __init__(self, *, sessions: sessionmaker[Session], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    def send(self, response_url: str, body: dict[str, Any]) -> None:
        with self.sessions() as db_session:
            reply(db_session, response_url=response_url, body=body, now=self.clock.now())
            db_session.commit()
