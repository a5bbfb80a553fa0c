"""Forgetting old receipts: retries stop long before (Slack: minutes; PagerDuty: 48 h).

Done at each start (deploys restart the service often enough for a table that
grows by one row per Slack event or PagerDuty webhook).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete

from bot.inbound.models import InboundReceipt

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

KEEP = timedelta(days=7)


def prune_receipts(runtime: Runtime) -> None:
    cutoff = runtime.clock.now() - KEEP
    with runtime.sessions() as db_session:
        result = db_session.execute(
            delete(InboundReceipt).where(InboundReceipt.received_at < cutoff)
        )
        db_session.commit()
    log.info("forgot %s inbound receipts from before %s", getattr(result, "rowcount", "?"), cutoff)
