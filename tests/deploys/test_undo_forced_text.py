"""An incident's Undo held by a gate names the command that can force it: a button
cannot carry `--force`, so "Add `--force`" would leave on-call guessing."""

from __future__ import annotations

from collections.abc import Callable

from bot.clock import ManualClock
from bot.config import parse_config
from bot.deploys.models import ROLLBACK
from bot.deploys.plans import Request
from bot.runtime import Runtime
from tests.deploys.conftest import deploy_config
from tests.deploys.test_deploy import refusal
from tests.deploys.test_undo_in_flight import completed
from tests.deploys.world import World


def test_an_undo_held_by_a_freeze_names_the_typed_rollback_that_can_force_it(
    make_runtime: Callable[..., Runtime], world: World, clock: ManualClock
) -> None:
    runtime = make_runtime()
    first = completed(runtime, world, clock, "1.0.1")
    second = completed(runtime, world, clock, "1.0.2")

    config = deploy_config()
    config["apps"]["api"]["environments"]["staging"]["freezes"] = [
        {"start": "2026-11-25T09:00:00Z", "end": "2026-11-25T18:00:00Z", "reason": "release train"}
    ]
    frozen = make_runtime(parse_config(config))
    undo = Request(
        app="api",
        env="staging",
        actor="U0ALICE",
        kind=ROLLBACK,
        rollback_of=first.id,
        undoes=second.id,
    )
    message = refusal(frozen, undo)
    assert "release train" in message
    typed = f'`/rollback api staging {first.id} --force "&lt;reason&gt;"`'
    assert message.endswith(f"Type {typed} to go ahead anyway (it is audited)."), message

    # Typed, the same rollback is told to add the option, as before.
    typed_rollback = Request(
        app="api", env="staging", actor="U0ALICE", kind=ROLLBACK, rollback_of=first.id
    )
    assert refusal(frozen, typed_rollback).endswith(
        'Add `--force "<reason>"` to go ahead anyway (it is audited).'
    )
