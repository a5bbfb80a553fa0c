"""What a send attempt came to, as the worker records it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class MessageRef:
    """A Slack message the bot owns: where it was posted, if it was."""

    key: str
    channel: str
    channel_id: str | None
    ts: str | None


@dataclass(frozen=True)
class Job:
    """A claimed delivery, detached from the database while it is on the wire."""

    id: int
    kind: str
    target: str
    payload: dict[str, Any]
    attempts: int
    message: MessageRef | None
    created_at: datetime | None = None  # written in the transaction that caused it


@dataclass(frozen=True)
class Sent:
    ts: str | None = None
    channel_id: str | None = None


@dataclass(frozen=True)
class Retry:
    error: str
    after_s: float | None = None  # None: exponential backoff
    pause_target_s: float | None = None  # a 429: hold the whole target
    forget_ts: bool = False  # the message was deleted in Slack: post it anew
    # The request may still land (a timeout, a reset): wait out the lease before
    # looking for it and trying again, so a late arrival is found, not doubled.
    ambiguous: bool = False
    # Slack refused the bot's token (invalid_auth, token_revoked...): a person must act.
    credentials_refused: bool = False


@dataclass(frozen=True)
class Dead:
    error: str


Result = Sent | Retry | Dead
