"""Slack dates (bot/slack_dates.py): the token Slack formats per reader, and its UTC fallback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from bot.slack_dates import plain, slack_date, utc_text

T0 = datetime(2026, 11, 25, 10, 0, 7, tzinfo=UTC)
EPOCH = 1795600807  # T0 as Unix seconds


def test_a_time_is_a_slack_date_token_with_a_utc_fallback() -> None:
    assert int(T0.timestamp()) == EPOCH
    assert slack_date(T0) == f"<!date^{EPOCH}^{{date_short_pretty}} {{time}}|2026-11-25 10:00 UTC>"
    assert slack_date(T0, seconds=True) == (
        f"<!date^{EPOCH}^{{date_short_pretty}} {{time_secs}}|2026-11-25 10:00:07 UTC>"
    )


def test_the_fallback_is_utc_whatever_the_zone_and_a_naive_time_is_utc() -> None:
    berlin = T0.astimezone(timezone(timedelta(hours=1)))
    assert slack_date(berlin) == slack_date(T0)
    assert slack_date(T0.replace(tzinfo=None)) == slack_date(T0)
    assert utc_text(berlin, seconds=True) == "2026-11-25 10:00:07 UTC"


def test_no_time_is_a_question_mark() -> None:
    assert slack_date(None) == utc_text(None) == "?"


def test_plain_leaves_the_fallback_for_a_terminal() -> None:
    text = f"locked since {slack_date(T0)}, until {slack_date(T0, seconds=True)} <@U0ALICE>"
    assert (
        plain(text) == "locked since 2026-11-25 10:00 UTC, until 2026-11-25 10:00:07 UTC <@U0ALICE>"
    )
