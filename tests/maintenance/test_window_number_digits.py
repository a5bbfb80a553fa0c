"""`/incident silence end` takes a window's number in ASCII digits.

`²` and `¹` are digits to `str.isdigit` but not to int(): such a number is answered
with the usage, and no window ends.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sandbox.slack import SlackEmulator
from tests.maintenance.conftest import audit_lines, silence, windows_of
from tests.support import LiveService


@pytest.mark.parametrize("number", ["\u00b2", "#\u00b9", "1\u00b2"])
def test_a_window_number_in_other_digits_is_answered_with_the_usage(
    start: Callable[..., LiveService], slack: SlackEmulator, number: str
) -> None:
    service = start()
    silence(service, slack, "silence prod for 1h reason failover drill")
    acked, reply = silence(service, slack, f"silence end {number}")
    assert "is not a window number" in acked and "Usage:" in acked, acked
    assert reply is None
    [window] = windows_of(service)
    assert window.ended_at is None
    assert audit_lines(service, "maintenance.end") == []
