"""Forgetting old receipts: retries stop long before (Slack: minutes; PagerDuty: 48 h).

Done at each start (deploys restart the service often enough for a table that
grows by one row per Slack event or PagerDuty webhook).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.inbound.models import InboundReceipt

log = logging.getLogger(__name__)

KEEP = timedelta(days=7)


def prune_receipts(sessions: sessionmaker[Session], clock: Clock) -> None:
    cutoff = clock.now() - KEEP
    with sessions() as db_session:
        result = db_session.execute(
            delete(InboundReceipt).where(InboundReceipt.received_at < cutoff)
        )
        db_session.commit()
    log.info("forgot %s inbound receipts from before %s", getattr(result, "rowcount", "?"), cutoff)
