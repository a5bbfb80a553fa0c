"""The Silence form's fields, each read on its own and refused in plain text on its own field.

The form's Starts, For and Reason are not words of a typed command: what one
holds is never read as another's, and a refusal shows under its field as Slack
shows it, plain text with no code marks or HTML entities.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.modals.errors import FieldErrors
from bot.modals.service import (
    LASTS,
    REASON,
    SILENCE_GLOB,
    SILENCE_ROUTE,
    STARTS,
    silence_request,
)

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def form(starts: str = "", lasts: str = "1h", reason: str = "db upgrade") -> dict[str, str]:
    return {SILENCE_ROUTE: "prod", STARTS: starts, LASTS: lasts, REASON: reason}


@pytest.mark.parametrize(
    ("starts", "at"),
    [
        ("", NOW),
        ("now", NOW),
        ("NOW", NOW),
        ("in 30m", NOW + timedelta(minutes=30)),
        ("22:00", NOW.replace(hour=22)),
        ("at 22:00", NOW.replace(hour=22)),
        ("2026-11-26T08:00", datetime(2026, 11, 26, 8, 0, tzinfo=UTC)),
    ],
)
def test_starts_takes_now_in_at_or_a_time(starts: str, at: datetime) -> None:
    request = silence_request(form(starts=starts), now=NOW)
    assert request.starts_at == at
    assert request.minutes == 60
    assert request.reason == "db upgrade"


@pytest.mark.parametrize(
    "starts", ["in 1m for 30d reason x", "now for 2d", "22:00 reason y", "at 22:00 tomorrow"]
)
def test_more_words_in_starts_are_refused_there_not_read_as_the_window(starts: str) -> None:
    with pytest.raises(FieldErrors) as refused:
        silence_request(form(starts=starts), now=NOW)
    assert set(refused.value.errors) == {STARTS}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        (form(starts="in 1x"), STARTS),
        (form(starts="at 09:00"), STARTS),  # in the past
        (form(starts="in 31d"), STARTS),
        (form(starts="a<b>&c"), STARTS),
        (form(reason=""), REASON),
        (form(reason="x" * 501), REASON),
        ({SILENCE_GLOB: "prod<&>db", LASTS: "1h", REASON: "x"}, SILENCE_GLOB),
    ],
)
def test_each_refusal_is_plain_text_on_its_own_field(values: dict[str, str], field: str) -> None:
    with pytest.raises(FieldErrors) as refused:
        silence_request(values, now=NOW)
    said = refused.value.errors[field]
    assert said
    for mark in ("`", "&lt;", "&gt;", "&amp;", "*"):
        assert mark not in said


@given(st.text(max_size=40))
def test_any_starts_text_is_a_window_as_long_as_lasts_or_a_refusal_on_starts(
    starts: str,
) -> None:
    try:
        request = silence_request(form(starts=starts), now=NOW)
    except FieldErrors as exc:
        assert set(exc.errors) == {STARTS}
        return
    assert request.minutes == 60
    assert request.reason == "db upgrade"
    assert NOW <= request.starts_at <= NOW + timedelta(days=30)
