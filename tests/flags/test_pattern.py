"""A `pattern` from the AppConfig document is never run by the bot's `re`.

`^([a-z]+)*$` against forty letters and a `!` backtracks for hours, and
CPython's `re` holds the GIL meanwhile: one `/flag set` would freeze every
thread of the process. The pattern is left to AppConfig's own check on write.
"""

from __future__ import annotations

import copy

import pytest

from bot.clock import ManualClock
from bot.flags import flows
from bot.runtime import Runtime
from tests.flags.conftest import FLAGS_DOCUMENT, FlagWorld
from tests.flags.test_appconfig import change
from tests.flags.test_undeployed import confirm_newest, deploy_version

HOSTILE = "a" * 40 + "!"


@pytest.mark.timeout(60)  # the guard: on a backtracking `re` this test never ends
def test_a_catastrophic_pattern_does_not_hold_the_bot(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock
) -> None:
    document = copy.deepcopy(FLAGS_DOCUMENT)
    document["flags"]["banner"]["attributes"]["slug"] = {
        "constraints": {"type": "string", "pattern": "^([a-z]+)*$"}
    }
    assert flag_world.write(document, "console: a slug for the banner") == 2
    deploy_version(flag_world, clock, 2)

    asked = flows.submit(runtime, change("set", "banner", slug=HOSTILE))
    assert "waits for your confirmation" in asked
    assert "version 3 written, AppConfig deployment 2 started" in confirm_newest(runtime)
    assert flag_world.document(3)["values"]["banner"]["slug"] == HOSTILE
