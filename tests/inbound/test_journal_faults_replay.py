"""A replayed Slack signature is refused for as long as Slack's timestamp check takes it,
even when this instance's clock is behind Slack's."""

from __future__ import annotations

from collections.abc import Callable

from bot.config import parse_config
from bot.settings import Settings
from handlers.slack_events import build_bolt_app
from tests.conftest import TEST_CONFIG
from tests.support import LiveService

# Slack's check: a timestamp within this of our clock (slack_sdk's SignatureVerifier).
CHECK_S = 300


def test_a_signature_is_remembered_while_slacks_check_would_take_it(
    settings: Settings, make_service: Callable[..., LiveService]
) -> None:
    bolt = build_bolt_app(make_service(settings, parse_config(TEST_CONFIG)).runtime)
    assert bolt is not None
    guard = bolt.admission.replays
    now = [1000.0]
    guard.monotonic = lambda: now[0]  # the guard's own clock, moved by hand
    # Our clock is 299 s behind Slack's: the timestamp is taken when first seen, and
    # again until our clock reaches timestamp + 300, 599 s later.
    assert guard.first_time("v0=captured")
    now[0] += CHECK_S - 1 + CHECK_S
    assert not guard.first_time("v0=captured")
