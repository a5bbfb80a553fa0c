"""What a send attempt came to, as the worker records it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.outbox.models import PAGERDUTY_REST

# A Retry-After beyond this is taken as this: one odd header must not stop a lane for days.
MAX_RETRY_AFTER_S = 3600.0


@dataclass(frozen=True)
class MessageRef:
    """A Slack message the bot owns: where it was posted, if it was."""

    key: str
    channel: str
    channel_id: str | None
    ts: str | None
    # The thread the message is (to be) posted in: its parent's ts, once posted.
    thread_ts: str | None = None
    # Whether a post of it is pending while it has no ts (not posted yet, or deleted in
    # Slack and to be posted again): a reply under it waits. None: the claim did not say.
    owed: bool | None = None


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
    # The pacing lane its send counts against, when not its target: a posted
    # message's update counts against the workspace's chat.update budget.
    lane: str | None = None

    @property
    def paced_by(self) -> str:
        return self.lane or self.target


@dataclass(frozen=True)
class Sent:
    ts: str | None = None
    channel_id: str | None = None
    # The sender closed the delivery in the transaction that recorded its effect
    # (service.complete): the worker has nothing left to write.
    recorded: bool = False


@dataclass(frozen=True)
class Retry:
    error: str
    after_s: float | None = None  # None: exponential backoff
    pause_target_s: float | None = None  # a 429: hold the job's whole lane (`Job.paced_by`)
    forget_ts: bool = False  # the message was deleted in Slack: post it anew
    # The request may still land (a timeout, a reset): wait out the lease before
    # looking for it and trying again, so a late arrival is found, not doubled.
    ambiguous: bool = False
    # Slack refused the bot's token (invalid_auth, token_revoked...): a person must act.
    credentials_refused: bool = False
    # Not a failure: the call waits for another delivery to go first (a PagerDuty call for
    # its page's trigger), so it is neither logged as a failed attempt nor counted as one.
    waiting: bool = False


@dataclass(frozen=True)
class Dead:
    error: str
    # The sender marked the delivery dead in the transaction that told the person
    # (service.complete): the worker writes nothing, but still counts and reports it.
    recorded: bool = False


Result = Sent | Retry | Dead


def told_to_its_person(job: Job) -> bool:
    """A person's call on a PagerDuty incident: its end, whatever it is, is told to that
    person in the incident's thread, so its death pages no operator. opsbot's own
    escalation (`via` "job") has no such person."""
    return is_persons_call(job.kind, job.payload)


def is_persons_call(kind: str, payload: Mapping[str, Any]) -> bool:
    """A delivery of `kind` with `payload` is a person's call on a PagerDuty incident
    (see `told_to_its_person`): never sent again once given up, the person having
    been told it failed."""
    return kind == PAGERDUTY_REST and payload.get("via") != "job"


def retry_after_s(headers: Mapping[str, Any] | None, *, default: float) -> float:
    """The seconds a 429's `Retry-After` header asks for (any case), or `default`
    when it is absent or not a number of seconds."""
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            try:
                seconds = float(value[0] if isinstance(value, list) else value)
            except (TypeError, ValueError):
                return default
            if seconds != seconds:  # NaN
                return default
            return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
    return default
