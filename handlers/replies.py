"""Answering the person who typed a command or clicked a button, through the outbox."""

from __future__ import annotations

import hashlib

from bot.approvals.render import ephemeral
from bot.outbox import service as outbox
from bot.runtime import Runtime


def answer(runtime: Runtime, *, response_url: str | None, text: str) -> None:
    """An ephemeral answer via the request's response_url (retried by the outbox)."""
    if not response_url:
        return
    order = hashlib.sha256(response_url.encode()).hexdigest()[:32]
    with runtime.sessions() as db_session:
        outbox.respond(
            db_session,
            response_url=response_url,
            body=ephemeral(text),
            order_key=f"slack-response:{order}",
            now=runtime.clock.now(),
        )
        db_session.commit()
