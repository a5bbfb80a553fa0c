"""The `/incident silence` grammar: what parses, what each refusal says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.maintenance.errors import BadWindow
from bot.maintenance.requests import is_catch_all, minutes_of, parse_window, window_id
from bot.modals.errors import FieldErrors
from bot.modals.service import LASTS, REASON, SILENCE_ROUTE, STARTS, silence_request

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def said(text: str) -> list[str]:
    """The words after `/incident silence`, as the handler splits them."""
    return text.split()


def test_a_window_reads_as_a_sentence() -> None:
    request = parse_window(said("prod-db-* at 22:00 for 1h30m reason db upgrade"), now=NOW)
    assert request.target == "prod-db-*"
    assert request.starts_at == NOW.replace(hour=22)
    assert request.minutes == 90 and request.ends_at == NOW.replace(hour=23, minute=30)
    assert request.reason == "db upgrade"
    later = parse_window(said("prod IN 30m FOR 2h REASON drill"), now=NOW)
    assert later.starts_at == NOW + timedelta(minutes=30) and later.minutes == 120
    at = parse_window(said("prod at 2026-11-26T08:00+02:00 for 1d reason x"), now=NOW)
    assert at.starts_at == datetime(2026, 11, 26, 6, 0, tzinfo=UTC) and at.minutes == 1440


@pytest.mark.parametrize(
    ("glob", "everything"),
    [
        ("*", True),
        ("**", True),
        ("*?", True),
        ("?", False),
        ("prod-*", False),
        ("*-5xx", False),
        # Brackets name a set, not a character every name must have.
        ("[!~]*", True),
        ("[!]]*", True),
        ("[a-z]*", True),
        ("*[!x]", True),
        ("[!~]", False),
        ("[p]rod-*", False),
        ("[*", False),  # an unclosed bracket is a literal `[`
    ],
)
def test_a_glob_over_every_alarm_is_known(glob: str, everything: bool) -> None:
    assert is_catch_all(glob) is everything


@given(st.text(max_size=30))
def test_any_text_is_a_duration_or_a_refusal(text: str) -> None:
    try:
        minutes = minutes_of(text)
    except BadWindow as exc:
        assert "duration" in str(exc) or "at least a minute" in str(exc)
    else:
        assert minutes >= 1


@given(st.lists(st.text(min_size=1, max_size=20).filter(lambda w: not w.isspace()), max_size=8))
def test_any_words_make_a_window_or_a_refusal(words: list[str]) -> None:
    try:
        request = parse_window(words, now=NOW)
    except BadWindow:
        return
    assert request.starts_at >= NOW and request.minutes >= 1 and request.reason


@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00+05:00", "9999-12-31T23:59-05:00", "0001-01-01T00:00:00+23:59"]
)
def test_a_time_with_no_utc_date_is_not_a_time(moment: str) -> None:
    with pytest.raises(BadWindow, match="is not a time"):
        parse_window(said(f"prod at {moment} for 1h reason x"), now=NOW)
    # The modal's start field goes the same way, shown on that field.
    form = {SILENCE_ROUTE: "prod", STARTS: moment, LASTS: "1h", REASON: "x"}
    with pytest.raises(FieldErrors) as refused:
        silence_request(form, now=NOW)
    assert "is not a time" in refused.value.errors[STARTS]


def test_window_numbers() -> None:
    assert window_id("#3") == 3
    for bad in ("x", "", "1234567890", "-1"):
        with pytest.raises(BadWindow):
            window_id(bad)
