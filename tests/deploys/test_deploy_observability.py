"""What a deploy's failures leave for an operator: a log line, a number, an audit line.

AWS fails the way it does for real: moto's own ECS or ECR refuses (`aws_call_fails`
wraps a moto backend method, as `sandbox/ecs_rollouts.py` does), and the bot reads
it only through the AWS APIs. Outcomes are counted in `opsbot_deploys_total`, wired
to the runtime's sessions here as the composition root wires them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from moto.core.exceptions import JsonRESTError
from moto.ecr.models import ECRBackend
from moto.ecs.models import EC2ContainerServiceBackend

from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.config import parse_config
from bot.deploys import locks
from bot.deploys.errors import DeployFailed, DeployRefused
from bot.deploys.flows import count_outcomes_after_commit
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import RELEASES, deploy_config
from tests.deploys.test_watch import status_of, tick
from tests.deploys.world import World
from tests.support import wait_for

ALICE = Request(app="api", env="staging", actor="U0ALICE", tag="1.0.1")
BOB = Request(app="api", env="staging", actor="U0BOB", tag="1.0.2")


def denied(operation: str) -> JsonRESTError:
    return JsonRESTError("AccessDeniedException", f"not authorized to perform {operation}")


@contextmanager
def moto_answers(
    backend: Any, name: str, answer: Callable[[Callable[[], Any]], Any]
) -> Iterator[None]:
    """Moto's `backend` method `name` answers as `answer(call)` says, `call` doing it."""
    original = getattr(backend, name)

    def instead(self: Any, *args: Any, **kwargs: Any) -> Any:
        return answer(lambda: original(self, *args, **kwargs))

    setattr(backend, name, instead)
    try:
        yield
    finally:
        setattr(backend, name, original)


def refuse(error: JsonRESTError) -> Callable[[Callable[[], Any]], Any]:
    def answer(call: Callable[[], Any]) -> Any:
        raise error

    return answer


def counted(runtime: Runtime) -> Callable[[str, str], float | None]:
    """opsbot_deploys_total{kind,outcome} of `runtime` (None: no such series), counting now."""
    count_outcomes_after_commit(runtime.sessions, runtime.metrics)

    def value(kind: str, outcome: str) -> float | None:
        return runtime.metrics.registry.get_sample_value(
            "opsbot_deploys_total", {"kind": kind, "outcome": outcome}
        )

    return value


def audit(runtime: Runtime, action: str) -> list[AuditRecord]:
    with runtime.sessions() as db:
        query = sa.select(AuditRecord).where(AuditRecord.action == action)
        return list(db.scalars(query.order_by(AuditRecord.id)))


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("bot.deploys") and r.levelno >= level]


def test_every_outcome_label_reads_zero_before_its_first_event(runtime: Runtime) -> None:
    value = counted(runtime)
    for kind in ("deploy", "rollback", "flag_roll"):
        for outcome in ("started", "completed", "failed", "refused", "superseded", "stuck"):
            assert value(kind, outcome) == 0


def test_a_start_aws_refuses_is_logged_with_its_ids_and_counted(
    runtime: Runtime, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    value = counted(runtime)
    refused = refuse(denied("ecs:UpdateService"))
    with (
        moto_answers(EC2ContainerServiceBackend, "update_service", refused),
        caplog.at_level(logging.WARNING, logger="bot.deploys"),
        pytest.raises(DeployFailed, match="AccessDeniedException"),
    ):
        submit(runtime, ALICE)
    [line] = lines(caplog, logging.WARNING)
    assert line.getMessage().startswith(
        "deployment 1: deploy of 1.0.1 to api/staging by U0ALICE failed "
        "(AWS error AccessDeniedException): AWS refused to update the service"
    )
    ids = {k: line.__dict__[k] for k in ("deployment", "app", "env", "slack_user", "aws_error")}
    assert tuple(ids.values()) == (
        1,
        "api",
        "staging",
        "U0ALICE",
        "AccessDeniedException",
    )
    assert (value("deploy", "started"), value("deploy", "failed")) == (1, 1)


def test_an_aws_error_during_the_checks_is_audited_logged_and_counted(
    runtime: Runtime, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    value = counted(runtime)
    refused = refuse(denied("ecr:DescribeImageScanFindings"))
    with (
        moto_answers(ECRBackend, "describe_image_scan_findings", refused),
        caplog.at_level(logging.WARNING, logger="bot.deploys"),
        pytest.raises(DeployFailed, match="AWS refused to read the image's scan findings"),
    ):
        submit(runtime, ALICE)
    [request] = audit(runtime, "deploy.request")
    assert (request.actor, request.outcome, request.detail["aws_error"]) == (
        "U0ALICE",
        "failed",
        "AccessDeniedException",
    )
    assert "AWS refused to read the image's scan findings" in request.detail["reason"]
    [line] = lines(caplog, logging.WARNING)
    assert line.getMessage().startswith(
        "deploy of 1.0.1 to api/staging by U0ALICE failed before it started "
        "(AWS error AccessDeniedException)"
    )
    assert (value("deploy", "failed"), value("deploy", "started")) == (1, 0)


def test_a_manual_lock_taken_between_the_checks_and_the_start_is_an_audited_refusal(
    runtime: Runtime, world: World
) -> None:
    """Bob locks the environment while Alice's checks read ECR: her start refuses it."""
    value = counted(runtime)

    def bob_locks(call: Callable[[], Any]) -> Any:
        locks.lock(runtime, app="api", env="staging", actor="U0BOB", reason="migration")
        return call()

    with (
        moto_answers(ECRBackend, "describe_image_scan_findings", bob_locks),
        pytest.raises(DeployRefused, match="is locked by <@U0BOB>"),
    ):
        submit(runtime, ALICE)
    [request] = audit(runtime, "deploy.request")
    assert (request.actor, request.outcome) == ("U0ALICE", "refused")
    assert "locked by <@U0BOB>" in request.detail["reason"]
    assert value("deploy", "refused") == 1


def test_a_deploy_lock_lost_to_a_concurrent_deploy_is_an_audited_refusal(
    runtime: Runtime, world: World
) -> None:
    """Bob's deploy starts while Alice's checks read ECR: hers finds the lock taken."""
    calls: list[int] = []

    def bob_deploys(call: Callable[[], Any]) -> Any:
        calls.append(1)
        if len(calls) == 1:
            submit(runtime, BOB)
        return call()

    with (
        moto_answers(ECRBackend, "describe_image_scan_findings", bob_deploys),
        pytest.raises(DeployRefused, match="is busy: deployment #1"),
    ):
        submit(runtime, ALICE)
    [request] = audit(runtime, "deploy.request")
    assert (request.actor, request.outcome) == ("U0ALICE", "refused")


def test_no_channel_to_confirm_in_is_an_audited_refusal(
    make_runtime: Callable[..., Runtime], world: World
) -> None:
    raw = deploy_config()
    del raw["apps"]["api"]["environments"]["prod"]["release_channel"]
    runtime = make_runtime(parse_config(raw))
    request = Request(app="api", env="prod", actor="U0ALICE", tag="1.0.1", cli_identity="os:ci")
    with pytest.raises(DeployRefused, match="it has no release_channel"):
        submit(runtime, request)
    [refused] = audit(runtime, "deploy.request")
    assert (refused.actor, refused.outcome, refused.detail["cli"]) == (
        "U0ALICE",
        "refused",
        "os:ci",
    )


def test_a_watch_that_cannot_read_ecs_marks_the_rollout_stuck_and_a_force_takes_over(
    runtime: Runtime,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    value = counted(runtime)
    accepted = submit(runtime, ALICE)
    world.rollouts.progress("staging", running=1, pending=1)
    tick(runtime, clock)  # the watch's one look at it
    refused = refuse(denied("ecs:DescribeServices"))
    with moto_answers(EC2ContainerServiceBackend, "describe_services", refused):
        tick(runtime, clock)  # the first look that fails
        for _ in range(59):  # 9 min 50 s more of them
            tick(runtime, clock)
        assert status_of(runtime, accepted.deployment_id).status == "rolling_out"
        with caplog.at_level(logging.ERROR, logger="bot.deploys"):
            tick(runtime, clock)  # ten minutes (stuck_after_min) since the first
        stuck = status_of(runtime, accepted.deployment_id)
        assert stuck.status == "stuck"
        assert stuck.stuck_at == clock.now()
    [line] = lines(caplog, logging.ERROR)
    assert "cannot read the rollout of api/staging" in line.getMessage()
    assert line.__dict__["aws_error"] == "AccessDeniedException"
    [alert] = wait_for(
        lambda: [m for m in releases.channel_messages(RELEASES) if "cannot read ECS" in m.text]
    )
    assert "opsbot cannot read ECS: `AccessDeniedException`" in alert.text
    assert "<@U0ALICE>" in alert.text
    [marked] = audit(runtime, "deploy.stuck")
    assert (marked.actor, marked.detail["aws_error"]) == ("opsbot", "AccessDeniedException")
    assert value("deploy", "stuck") == 1

    # ECS answers again, and nothing moved: Bob forces a deploy over the stuck one.
    forced = submit(runtime, replace(BOB, force_reason="outage: take over"))
    assert status_of(runtime, forced.deployment_id).status == "rolling_out"
    old = status_of(runtime, accepted.deployment_id)
    assert old.status == "superseded"
    [superseded] = [a for a in audit(runtime, "deploy.finish") if a.outcome == "superseded"]
    assert superseded.actor == "U0BOB"
    assert value("deploy", "superseded") == 1


def test_a_rollout_never_read_is_stuck_until_it_is_seen_to_move(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    """Blind from its start: its first readable look is no sign that it moves, so a
    forced deploy takes it over; had it moved since, the next look would say so."""
    accepted = submit(runtime, ALICE)
    refused = refuse(denied("ecs:DescribeServices"))
    with moto_answers(EC2ContainerServiceBackend, "describe_services", refused):
        for _ in range(61):
            tick(runtime, clock)
    assert status_of(runtime, accepted.deployment_id).status == "stuck"
    forced = submit(runtime, replace(BOB, force_reason="outage: take over"))
    assert status_of(runtime, accepted.deployment_id).status == "superseded"
    assert status_of(runtime, forced.deployment_id).status == "rolling_out"


def test_a_look_that_reads_ecs_again_ends_the_blind_spell(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    """Six minutes blind, one look that reads, six minutes blind again: not stuck."""
    accepted = submit(runtime, ALICE)
    refused = refuse(denied("ecs:DescribeServices"))
    for _ in range(2):
        with moto_answers(EC2ContainerServiceBackend, "describe_services", refused):
            for _ in range(36):
                tick(runtime, clock)
        world.rollouts.progress("staging", running=1, pending=1)
        tick(runtime, clock)
    assert status_of(runtime, accepted.deployment_id).status == "rolling_out"
    world.rollouts.complete("staging")
    tick(runtime, clock)
    assert status_of(runtime, accepted.deployment_id).status == "completed"
