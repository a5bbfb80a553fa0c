"""What one look at the ECS service says about a deployment: a pure function.

The watcher reads describe_services (and the stopped tasks of the deployment),
then `assess` turns that into a verdict: progress, completed, failed (the
circuit breaker rolled it back), superseded, stuck, or nothing new. A
verdict's summary is mrkdwn: ECS's words in it are escaped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.adapters.ecs import Rollout, ServiceState, StoppedTask
from bot.deploys.policy import short_task_definition
from bot.slack_text import code, inert

PROGRESS = "progress"
UNCHANGED = "unchanged"
COMPLETED = "completed"
FAILED = "failed"
SUPERSEDED = "superseded"
STUCK = "stuck"


@dataclass(frozen=True)
class Seen:
    """What the watcher knows of the deployment before this look."""

    ecs_deployment_id: str | None
    task_definition: str | None
    previous_task_definition: str | None
    observed: dict[str, Any]  # counts last seen, reported task arns
    last_progress_at: datetime | None
    is_stuck: bool


@dataclass(frozen=True)
class Verdict:
    kind: str
    counts: dict[str, Any]
    ecs_deployment_id: str | None
    summary: str = ""
    new_stopped: tuple[StoppedTask, ...] = field(default_factory=tuple)
    resumed: bool = False  # it was stuck and moves again


def counts_of(rollout: Rollout) -> dict[str, Any]:
    return {
        "state": rollout.rollout_state,
        "desired": rollout.desired,
        "running": rollout.running,
        "pending": rollout.pending,
        "failed": rollout.failed,
    }


def counts_text(counts: dict[str, Any]) -> str:
    text = (
        f"{counts.get('running', 0)}/{counts.get('desired', 0)} running, "
        f"{counts.get('pending', 0)} pending"
    )
    if counts.get("failed"):
        text += f", {counts['failed']} failed"
    return text


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("state", "desired", "running", "pending", "failed")
    return all(a.get(k) == b.get(k) for k in keys)


def ours(seen: Seen, service: ServiceState) -> Rollout | None:
    """The deployment's own ECS deployment, or a fresh one of its revision (same thing)."""
    rollout = service.find(seen.ecs_deployment_id)
    primary = service.primary
    if rollout is None and primary is not None and primary.task_definition == seen.task_definition:
        return primary
    return rollout


def assess(
    seen: Seen,
    service: ServiceState,
    *,
    stopped: list[StoppedTask],
    now: datetime,
    stuck_after: timedelta,
) -> Verdict:
    reported = set(seen.observed.get("reported_tasks") or [])
    new_stopped = tuple(t for t in stopped if t.arn not in reported)
    rollout = ours(seen, service)
    primary = service.primary
    if rollout is None:
        current = primary.task_definition if primary else service.task_definition
        if current and current == seen.previous_task_definition:
            return Verdict(
                FAILED,
                seen.observed,
                seen.ecs_deployment_id,
                summary=(
                    "the deployment is gone and the service is back on "
                    f"{code(short_task_definition(current))} (rolled back)"
                ),
                new_stopped=new_stopped,
            )
        return Verdict(
            SUPERSEDED,
            seen.observed,
            seen.ecs_deployment_id,
            summary=f"replaced by another deployment of {code(short_task_definition(current))}",
        )
    counts = counts_of(rollout)
    if rollout.rollout_state == "COMPLETED":
        return Verdict(COMPLETED, counts, rollout.id, new_stopped=new_stopped)
    if rollout.rollout_state == "FAILED":
        reason = inert((rollout.reason or "the deployment failed").rstrip(". "), 1000)
        if primary is not None and primary.id != rollout.id:
            back = code(short_task_definition(primary.task_definition))
            reason += f"; ECS rolled back to {back}"
        return Verdict(FAILED, counts, rollout.id, summary=reason, new_stopped=new_stopped)
    if rollout.status != "PRIMARY" and primary is not None:
        return Verdict(
            SUPERSEDED,
            counts,
            rollout.id,
            summary=(
                "replaced by another deployment of "
                f"{code(short_task_definition(primary.task_definition))}"
            ),
        )
    moved = not _same(counts, seen.observed) or bool(new_stopped)
    if moved:
        return Verdict(PROGRESS, counts, rollout.id, new_stopped=new_stopped, resumed=seen.is_stuck)
    since = seen.last_progress_at
    if not seen.is_stuck and since is not None and now - since >= stuck_after:
        return Verdict(STUCK, counts, rollout.id)
    return Verdict(UNCHANGED, counts, rollout.id)
