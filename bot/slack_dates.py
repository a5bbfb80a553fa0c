"""Times as people read them in Slack: each reader's own time zone, with a plain UTC fallback.

`slack_date` is the one way a time enters a Slack message
(https://api.slack.com/reference/surfaces/formatting#date-formatting); the
fallback is what clients that cannot format dates (and notifications) show.
Text for somewhere other than Slack (a terminal, the Markdown export, stored
event text) takes `utc_text`, or `plain` on a finished Slack text.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

DATE_TOKEN = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")


def _utc(moment: datetime) -> datetime:
    # The database hands back aware UTC times; a naive one is taken as UTC, never as local.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_text(moment: datetime | None, *, seconds: bool = False) -> str:
    """`2026-11-25 10:00 UTC` (with `:SS` when `seconds`); `?` for no time."""
    if moment is None:
        return "?"
    return _utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def slack_date(moment: datetime | None, *, seconds: bool = False) -> str:
    """`<!date^UNIX^{date_short_pretty} {time}|2026-11-25 10:00 UTC>`; `?` for no time."""
    if moment is None:
        return "?"
    epoch = int(_utc(moment).timestamp())
    time = "{time_secs}" if seconds else "{time}"
    return f"<!date^{epoch}^{{date_short_pretty}} {time}|{utc_text(moment, seconds=seconds)}>"


def plain(text: str) -> str:
    """`text` with every Slack date replaced by its UTC fallback (for a terminal)."""
    return DATE_TOKEN.sub(lambda found: found.group(1), text)
