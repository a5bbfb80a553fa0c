"""Telling operators about opsbot's own failures, once per episode, through the outbox.

Each condition has one row in `ops_notices`, locked while it changes, so that
however many deliveries die in a storm and however many instances see them,
an episode is announced once:

- dead deliveries: one message in `ops_channel` per episode, updated with the
  count; the episode ends after `DEAD_QUIET` without a new death. A dead
  delivery to the ops channel itself is not announced there (no loop).
- Slack refusing the bot's token: a PagerDuty trigger on the ops routing key
  (Slack cannot carry news of its own refusal), resolved by the next call
  Slack accepts.
- a page waiting too long to reach PagerDuty: one message in `ops_channel`,
  updated when every page has gone out.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.ops import render
from bot.ops.models import OpsNotice
from bot.outbox import service as outbox

log = logging.getLogger(__name__)

DEAD_DELIVERIES = "dead_deliveries"
SLACK_AUTH = "slack_auth"
LATE_PAGE = "late_page"
DEAD_QUIET = timedelta(minutes=10)


def _locked(db_session: Session, key: str, now: datetime) -> OpsNotice:
    """The condition's row, created if new, locked until the transaction ends."""
    dialect = postgresql if db_session.get_bind().dialect.name == "postgresql" else sqlite
    db_session.execute(
        dialect.insert(OpsNotice)
        .values(key=key, episode=0, count=0, opened_at=now, last_at=now, closed_at=now, detail={})
        .on_conflict_do_nothing(index_elements=["key"])
    )
    row = db_session.scalars(
        select(OpsNotice)
        .where(OpsNotice.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return row


def _open_episode(row: OpsNotice, now: datetime, detail: dict[str, Any]) -> None:
    row.episode += 1
    row.count = 1
    row.opened_at = now
    row.last_at = now
    row.closed_at = None
    row.detail = detail


def current(db_session: Session, key: str) -> OpsNotice | None:
    """The condition's latest episode (open when `closed_at` is None), if it ever had one."""
    row = db_session.get(OpsNotice, key)
    return row if row is not None and row.episode > 0 else None


def dead_delivery(
    db_session: Session,
    *,
    ops_channel: str | None,
    delivery_id: int,
    kind: str,
    target: str,
    error: str,
    now: datetime,
) -> bool:
    """Count a dead delivery in the current episode's message; False when not announced."""
    if ops_channel is None or target == outbox.slack_target(ops_channel):
        return False
    with db_session.begin_nested():
        row = _locked(db_session, DEAD_DELIVERIES, now)
        latest = {"delivery": delivery_id, "kind": kind, "target": target, "error": error[:300]}
        if row.episode > 0 and row.closed_at is None and now - row.last_at < DEAD_QUIET:
            row.count += 1
            row.last_at = now
            row.detail = {**row.detail, "latest": latest}
        else:
            _open_episode(row, now, {"latest": latest})
        outbox.post_or_update(
            db_session,
            key=f"ops:{DEAD_DELIVERIES}:{row.episode}",
            channel=ops_channel,
            message=render.dead_deliveries(count=row.count, since=row.opened_at, latest=latest),
            now=now,
        )
    return True


def _ops_dedup_key(episode: int) -> str:
    return f"opsbot-{SLACK_AUTH}-{episode}"


def slack_auth_lost(
    db_session: Session, *, ops_key_env: str | None, error: str, now: datetime
) -> bool:
    """Slack refused the token: page on the ops key at the episode's start. True if it began."""
    with db_session.begin_nested():
        row = _locked(db_session, SLACK_AUTH, now)
        if row.episode > 0 and row.closed_at is None:
            row.count += 1
            row.last_at = now
            return False
        _open_episode(row, now, {"error": error[:300]})
        if ops_key_env:
            outbox.pagerduty_event(
                db_session,
                routing_key_env=ops_key_env,
                dedup_key=_ops_dedup_key(row.episode),
                action="trigger",
                body=render.slack_auth_page(error=error),
                now=now,
            )
    log.error(
        "Slack refuses the bot's token (%s): nothing reaches Slack until it is replaced; %s",
        error,
        f"paging through {ops_key_env}" if ops_key_env else "no ops_pagerduty_routing_key_env",
        extra={"condition": SLACK_AUTH},
    )
    return True


def slack_auth_back(db_session: Session, *, ops_key_env: str | None, now: datetime) -> bool:
    """Slack accepted the token again: end the episode and resolve its page. True if one ended."""
    with db_session.begin_nested():
        row = _locked(db_session, SLACK_AUTH, now)
        if row.episode == 0 or row.closed_at is not None:
            return False
        row.closed_at = now
        if ops_key_env:
            outbox.pagerduty_event(
                db_session,
                routing_key_env=ops_key_env,
                dedup_key=_ops_dedup_key(row.episode),
                action="resolve",
                body={},
                now=now,
            )
    log.info("Slack accepts the bot's token again", extra={"condition": SLACK_AUTH})
    return True


def late_pages(
    db_session: Session,
    *,
    ops_channel: str,
    late: bool,
    waiting_s: float,
    pending: int,
    now: datetime,
) -> str | None:
    """Open or close the late-page episode; "opened", "closed" or None (no change)."""
    with db_session.begin_nested():
        row = _locked(db_session, LATE_PAGE, now)
        is_open = row.episode > 0 and row.closed_at is None
        if late == is_open:
            if late:
                row.last_at = now
            return None
        if late:
            _open_episode(row, now, {"waiting_s": round(waiting_s), "pending": pending})
        else:
            row.closed_at = now
        outbox.post_or_update(
            db_session,
            key=f"ops:{LATE_PAGE}:{row.episode}",
            channel=ops_channel,
            message=render.late_pages(
                since=row.opened_at,
                waiting_s=float(row.detail.get("waiting_s", waiting_s)),
                pending=int(row.detail.get("pending", pending)),
                over_at=row.closed_at,
            ),
            now=now,
        )
    return "opened" if late else "closed"
