"""The deploy modal's tag search reads ECR once for a while, not at every keystroke.

A search comes at each keystroke with Slack waiting three seconds; listing a
repository reads every page of DescribeImages, so a few people typing could
throttle ECR for the deploys themselves. AWS is moto behind the sandbox's front
door, on the test's clock.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from bot.clock import ManualClock
from bot.modals import service
from bot.runtime import Runtime
from tests.flags.conftest import FlagWorld

STAGING = "api/staging"


def tags(runtime: Runtime) -> list[str]:
    return service.search_tags(runtime, filled={service.TARGET: STAGING}, prefix="")


def test_keystrokes_reuse_the_tags_read_for_a_while_then_read_ecr_again(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock
) -> None:
    first = tags(runtime)
    assert first
    # Every ECR call fails now: the next keystrokes are answered from what was read.
    flag_world.front_door.server.faults.fail_for(600, status=400, calls=("ecr",))
    clock.advance(seconds=service.SUGGESTIONS_TTL.total_seconds() - 1)
    assert tags(runtime) == first
    clock.advance(seconds=1)
    with pytest.raises(ClientError):
        tags(runtime)
    flag_world.front_door.server.faults.clear()
    assert tags(runtime) == first
