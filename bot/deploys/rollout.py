"""What one look at the ECS service says about a deployment: a pure function.

The watcher reads describe_services (and the stopped tasks of the deployment),
then `assess` turns that into a verdict: progress, a change that is no
progress, completed, failed (the circuit breaker rolled it back), superseded,
stuck, or nothing new. A verdict's summary is mrkdwn: ECS's words in it are
escaped.

Progress is movement toward the goal only: more tasks running than ever
before in this rollout, a new rolloutState, a new desired count. Tasks that
stop or fail are reported but are no progress: a rollout whose tasks keep
crashing (no circuit breaker to fail it) is stuck once nothing nears the goal
for `stuck_after`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from bot.adapters.ecs import Rollout, ServiceState, StoppedTask
from bot.deploys.policy import short_task_definition
from bot.slack_text import code, inert

PROGRESS = "progress"
CHANGED = "changed"  # counts or stopped tasks to report, no nearer the goal
UNCHANGED = "unchanged"
COMPLETED = "completed"
FAILED = "failed"
SUPERSEDED = "superseded"
STUCK = "stuck"

# Stopped tasks remembered as reported, at most: those ECS still lists (about an hour
# of them) are kept, as a task forgotten while listed would be reported again.
MAX_REPORTED_TASKS = 500


@dataclass(frozen=True)
class Seen:
    """What the watcher knows of the deployment before this look."""

    ecs_deployment_id: str | None
    task_definition: str | None
    previous_task_definition: str | None
    observed: dict[str, Any]  # counts last seen, most running, reported task arns
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
    changed: bool = False  # counts or stopped tasks to report in the thread
    reported_tasks: tuple[str, ...] = ()  # the stopped tasks to remember as reported


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


def most_running(observed: dict[str, Any]) -> int:
    """The most tasks seen running at once since the goal was last set (see `high_water`)."""
    return max(int(observed.get("most_running") or 0), int(observed.get("running") or 0))


def high_water(previous: dict[str, Any], counts: dict[str, Any], *, switched: bool) -> int:
    """The most tasks running at once since the goal was last set, this look included.

    A new desired count (autoscaling) or another ECS deployment of the revision sets a
    new goal: counting from the tasks running then, a scale-in and the scale-out after
    it are progress again as each task comes up, not only past the count before.
    """
    running = int(counts.get("running") or 0)
    if switched or counts.get("desired") != previous.get("desired"):
        return running
    return max(most_running(previous), running)


def reported_count(observed: dict[str, Any]) -> int:
    """How many stopped tasks of the rollout were reported in all."""
    count = observed.get("reported_count")
    return int(count) if count is not None else len(observed.get("reported_tasks") or [])


def _nearer(counts: dict[str, Any], before: dict[str, Any], *, switched: bool) -> bool:
    """Whether the rollout moved toward its goal since the last look.

    A task that starts and crashes again raises the running count and lowers
    it: only more running than ever since the goal was last set (`high_water`)
    is nearer the goal. A new goal (desired count, another ECS deployment of the
    revision) is a move of its own.
    """
    if "state" not in before:
        return True  # the first look that reads the rollout
    return bool(
        switched
        or counts["running"] > most_running(before)
        or counts["state"] != before.get("state")
        or counts["desired"] != before.get("desired")
    )


def _remembered(
    seen: Seen, stopped: list[StoppedTask] | None, new_stopped: tuple[StoppedTask, ...]
) -> tuple[str, ...]:
    """The stopped tasks reported so far that are worth remembering, and the new ones.

    When this look read the stopped tasks (`stopped` is not None), one ECS no
    longer lists cannot be listed again, and is forgotten.
    """
    before = list(seen.observed.get("reported_tasks") or [])
    if stopped is not None:
        listed = {t.arn for t in stopped}
        before = [arn for arn in before if arn in listed]
    return tuple([*before, *(t.arn for t in new_stopped)][-MAX_REPORTED_TASKS:])


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
    stopped: list[StoppedTask] | None,
    now: datetime,
    stuck_after: timedelta,
) -> Verdict:
    """What this look at the service says; `stopped` is None when they were not read."""
    reported = set(seen.observed.get("reported_tasks") or [])
    new_stopped = tuple(t for t in stopped or [] if t.arn not in reported)
    verdict = _verdict(seen, service, new_stopped=new_stopped, now=now, stuck_after=stuck_after)
    return replace(verdict, reported_tasks=_remembered(seen, stopped, verdict.new_stopped))


def _verdict(
    seen: Seen,
    service: ServiceState,
    *,
    new_stopped: tuple[StoppedTask, ...],
    now: datetime,
    stuck_after: timedelta,
) -> Verdict:
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
    changed = not _same(counts, seen.observed) or bool(new_stopped)
    switched = seen.ecs_deployment_id is not None and rollout.id != seen.ecs_deployment_id
    if _nearer(counts, seen.observed, switched=switched):
        return Verdict(
            PROGRESS,
            counts,
            rollout.id,
            new_stopped=new_stopped,
            resumed=seen.is_stuck,
            changed=True,
        )
    since = seen.last_progress_at
    if not seen.is_stuck and since is not None and now - since >= stuck_after:
        return Verdict(STUCK, counts, rollout.id, new_stopped=new_stopped, changed=changed)
    if changed:
        return Verdict(CHANGED, counts, rollout.id, new_stopped=new_stopped, changed=True)
    return Verdict(UNCHANGED, counts, rollout.id)
