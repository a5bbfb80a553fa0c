"""The deploy modal's tag search reads ECR once for a while, not at every keystroke.

A search comes at each keystroke with Slack waiting three seconds; listing a
repository reads every page of DescribeImages, so a few people typing could
throttle ECR for the deploys themselves. AWS is moto behind the sandbox's front
door, on the test's clock.
"""

from __future__ import annotations

import threading

import pytest
from botocore.exceptions import ClientError

from bot.clock import ManualClock
from bot.modals import service
from bot.runtime import Runtime
from tests.flags.conftest import FlagWorld
from tests.support import wait_for

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


def test_keystrokes_during_one_slow_read_wait_for_it_rather_than_read_ecr_again(
    runtime: Runtime, flag_world: FlagWorld
) -> None:
    reads: list[str] = []
    runtime.aws.get("ecr").meta.events.register(
        "before-call.ecr.DescribeImages", lambda **_: reads.append("DescribeImages")
    )
    # ECR is slow on the first page: the person types on while the cache is cold.
    flag_world.front_door.server.faults.hang_next(1, seconds=0.5, calls=("ecr",))
    answers: list[list[str]] = []

    def keystroke() -> None:
        answers.append(tags(runtime))

    first = threading.Thread(target=keystroke)
    first.start()
    wait_for(lambda: reads)  # the first search's read is on its way
    others = [threading.Thread(target=keystroke) for _ in range(7)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join()
    assert reads == ["DescribeImages"]
    assert len(answers) == 8
    assert answers[0]
    assert all(answer == answers[0] for answer in answers)


def test_a_keystroke_waits_a_bounded_time_for_another_read_then_answers_with_nothing(
    runtime: Runtime, flag_world: FlagWorld
) -> None:
    reads: list[str] = []
    runtime.aws.get("ecr").meta.events.register(
        "before-call.ecr.DescribeImages", lambda **_: reads.append("DescribeImages")
    )
    # ECR slower than a search waits for another search's read.
    flag_world.front_door.server.faults.hang_next(
        1, seconds=service.READ_WAIT_S + 1.5, calls=("ecr",)
    )
    answers: list[list[str]] = []
    first = threading.Thread(target=lambda: answers.append(tags(runtime)))
    first.start()
    wait_for(lambda: reads)
    assert tags(runtime) == []  # nothing read before: no suggestions rather than no answer
    first.join()
    assert answers[0]
    assert reads == ["DescribeImages"]
