"""Pages and answers that leave the moment they are committed, not at the worker's next pass.

A new PagerDuty trigger, an answer through a response_url, a person's
PagerDuty REST call or a click's update of a posted Slack message is written
already claimed by this process's outbox worker (a lease, like the worker's own
claims) when nothing else is pending under its order key, its target is not
being paced and one of the worker's senders is free; right after the commit the
worker sends it. Should the process die in between, the lease runs out and any
instance's worker sends it then, as it would any claimed delivery (PagerDuty's
dedup key keeps a second trigger from opening a second incident).

It saves each of them the worker's wake-up, its query for due work and its
claim: for the first page of a storm, time spent next to the following alarms'
transactions; under a flood of clicks, two transactions per answer.
Other Slack messages and thread replies are left to the worker, which folds
their pending updates together (a click's update that finds another of its
message still on its way is folded too).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from bot.outbox.results import Job

CLAIMANT = "outbox_claimant"  # Session.info: who may claim in the transaction that adds
CLAIMED = "outbox_claimed"  # Session.info: what it claimed, to send after the commit


class Claimant(Protocol):
    instance_id: str

    def lease_until(self, *, target: str, order_key: str, now: datetime) -> datetime | None:
        """The end of a lease on a delivery not yet written, or None: it waits its turn."""

    def send_claimed(self, jobs: list[tuple[Job, str]]) -> None:
        """Send (job, order_key) pairs claimed for this instance by a committed transaction."""


def send_at_once(sessions: sessionmaker[Session], claimant: Claimant) -> None:
    """Let transactions of sessions from `sessions` claim for `claimant`."""
    sessions.configure(info={CLAIMANT: claimant})


def claimant_of(db_session: Session) -> Claimant | None:
    claimant: Claimant | None = db_session.info.get(CLAIMANT)
    return claimant


def note_claimed(db_session: Session, job: Job, order_key: str) -> None:
    db_session.info.setdefault(CLAIMED, []).append((job, order_key))


def take_claimed(db_session: Session) -> list[tuple[Job, str]]:
    claimed: list[tuple[Job, str]] = db_session.info.pop(CLAIMED, [])
    return claimed
