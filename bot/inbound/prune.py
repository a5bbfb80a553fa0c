"""Forgetting old receipts: retries stop long before (Slack: minutes; PagerDuty: 48 h).

Done at each start (deploys restart the service often enough for a table that
grows by one row per Slack event or PagerDuty webhook).

The SNS messages kept for their MessageId (`received_messages`, each with its
whole body) are forgotten the same way, after `KEEP_SNS`: SNS retries an HTTPS
endpoint for minutes (hours at most, by a custom delivery policy), and a queue
message lives at most 14 days, SQS's longest retention, counted from when it
was first queued, dead-letter queue included. A redrive queues it anew, for as
long again: twice 14 days still finds it a duplicate, and a little more covers
the clocks of several instances. A message still pending (recorded, not applied
yet) is never forgotten.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Integer, String, column, delete, select, table
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.db.types import UTCDateTime
from bot.inbound.models import InboundReceipt

log = logging.getLogger(__name__)

KEEP = timedelta(days=7)
KEEP_SNS = timedelta(days=30)
SNS_SLICE = 1000

# bot/alarms/models.py's ReceivedMessage, named here by its columns: bot.inbound sits
# below bot.alarms and imports none of it.
_RECEIVED = table(
    "received_messages",
    column("id", Integer),
    column("outcome", String),
    column("received_at", UTCDateTime()),
)
_PENDING = "pending"  # bot.alarms.models.PENDING


def prune_receipts(sessions: sessionmaker[Session], clock: Clock) -> None:
    cutoff = clock.now() - KEEP
    with sessions() as db_session:
        result = db_session.execute(
            delete(InboundReceipt).where(InboundReceipt.received_at < cutoff)
        )
        db_session.commit()
    log.info("forgot %s inbound receipts from before %s", getattr(result, "rowcount", "?"), cutoff)
    try:
        prune_received_messages(sessions, clock)
    except Exception:
        # Only space: the next start tries again.
        log.exception("could not forget old SNS messages; the next start tries again")


def prune_received_messages(
    sessions: sessionmaker[Session], clock: Clock, *, keep: timedelta = KEEP_SNS
) -> int:
    """Forget the SNS messages received before `keep` ago and done with; how many it forgot.

    Walked in id order, the order they were received in, a slice to a transaction,
    up to the first one still kept: the rows read are the old ones and one slice
    more, with no index on `received_at`, and neither database holds a lock long.
    """
    cutoff = clock.now() - keep
    after = 0
    forgotten = 0
    while True:
        with sessions() as db_session:
            rows = db_session.execute(
                select(_RECEIVED.c.id, _RECEIVED.c.received_at, _RECEIVED.c.outcome)
                .where(_RECEIVED.c.id > after)
                .order_by(_RECEIVED.c.id)
                .limit(SNS_SLICE)
            ).all()
            old = [row.id for row in rows if _old(row.received_at, cutoff, row.outcome)]
            if old:
                db_session.execute(
                    delete(_RECEIVED).where(
                        _RECEIVED.c.id.in_(old), _RECEIVED.c.outcome != _PENDING
                    )
                )
                db_session.commit()
        forgotten += len(old)
        if len(rows) < SNS_SLICE or any(row.received_at >= cutoff for row in rows):
            break
        after = rows[-1].id
    log.info("forgot %d SNS messages received before %s", forgotten, cutoff)
    return forgotten


def _old(received_at: datetime, cutoff: datetime, outcome: str) -> bool:
    return received_at < cutoff and outcome != _PENDING
