"""The /flag modal's suggestions of SSM flags: names and values, read once a while.

A search comes at each keystroke. The flags' values are one GetParametersByPath;
who wrote each last (GetParameterHistory, a call per flag) is for `/flag list`,
not for an option's description. Calls are counted at the AWS front door.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from bot.clock import ManualClock
from bot.modals import service
from bot.runtime import Runtime
from sandbox.server import HttpRequest, HttpResponse
from tests.flags.conftest import FlagWorld

STAGING = "api/staging"


def counting(
    forward: Callable[[HttpRequest], HttpResponse], calls: Counter[str]
) -> Callable[[HttpRequest], HttpResponse]:
    def counted(request: HttpRequest) -> HttpResponse:
        calls[str(request.headers.get("x-amz-target") or "").removeprefix("AmazonSSM.")] += 1
        return forward(request)

    return counted


def test_keystrokes_read_the_ssm_values_once_a_while_and_no_history(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: Counter[str] = Counter()
    monkeypatch.setattr(
        flag_world.front_door, "_forward", counting(flag_world.front_door._forward, calls)
    )

    for prefix in ("", "a", "ap", "app"):  # keystrokes within seconds
        choices = service.flag_choices(runtime, filled={service.TARGET: STAGING}, prefix=prefix)
        clock.advance(seconds=2)

    assert [(c.value, c.description) for c in choices] == [("APPLE_PAY", "false")]
    assert calls["GetParametersByPath"] == 1
    assert calls["GetParameterHistory"] == 0
    clock.advance(seconds=15)  # past what a search keeps: read again
    service.flag_choices(runtime, filled={service.TARGET: STAGING}, prefix="")
    assert calls["GetParametersByPath"] == 2
