"""Block Kit and text for deploys: pure functions of deployments, locks and views.

Tags, image names, revisions, ECS states and people's reasons are outside text:
each is escaped (bot/slack_text.py) where it is put into a message. Texts
stored as mrkdwn (a deployment's outcome, a pending action's summary, stopped
tasks' lines) were escaped when they were composed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.approvals.render import actor_text
from bot.deploys.models import (
    COMPLETED,
    FAILED,
    FLAG_ROLL,
    ROLLBACK,
    ROLLING_OUT,
    STARTING,
    STUCK,
    SUPERSEDED,
    DeployLock,
    Deployment,
)
from bot.deploys.policy import image_text, short_digest, short_image, short_task_definition
from bot.deploys.queries import ReleasesView, StatusView
from bot.deploys.rollout import counts_text
from bot.incidents.render import duration
from bot.slack_dates import slack_date
from bot.slack_text import (
    ANSWER_MAX,
    CONTEXT_MAX,
    FIELD_MAX,
    SECTION_MAX,
    TEXT_MAX,
    clip,
    code,
    escape,
    inert,
)

STATUS_ICON = {
    STARTING: ":hourglass_flowing_sand:",
    ROLLING_OUT: ":rocket:",
    STUCK: ":warning:",
    COMPLETED: ":white_check_mark:",
    FAILED: ":x:",
    SUPERSEDED: ":fast_forward:",
}
# The error code said of a service that DescribeServices does not find (deleted, or
# misnamed in the configuration): ECS answers without an error of its own.
SERVICE_NOT_FOUND = "ServiceNotFound"
STATUS_WORD = {
    STARTING: "starting",
    ROLLING_OUT: "rolling out",
    STUCK: "STUCK",
    COMPLETED: "completed",
    FAILED: "FAILED",
    SUPERSEDED: "superseded",
}


def channel_text(channel: str | None) -> str:
    if not channel:
        return "no channel"
    if channel.startswith("#"):
        return escape(channel)
    return f"<#{channel}>" if channel.isalnum() else code(channel)


def what(deployment: Deployment, *, show: Callable[[object], str] = code) -> str:
    """``api 1.2.3`` (the tag, or the short digest)."""
    version = deployment.tag or short_digest(deployment.digest)
    return f"{show(deployment.app)} {show(version)}"


def plain(text: object) -> str:
    """Outside text for a plain line (a notification): inert, and no code span."""
    return escape(text).replace("`", "\u02cb")


def headline(deployment: Deployment, *, show: Callable[[object], str] = code) -> str:
    """The deployment's state in a line; `show` puts its names in (`plain`: no code spans)."""
    return f"{STATUS_ICON.get(deployment.status, '')} {_status_line(deployment, show=show)}"


def _status_line(deployment: Deployment, *, show: Callable[[object], str]) -> str:
    env = show(deployment.label)
    if deployment.kind == FLAG_ROLL:
        verb = {
            STARTING: "Restarting",
            ROLLING_OUT: "Restarting",
            STUCK: "Restart stuck:",
            COMPLETED: "Restarted",
            FAILED: "Restart failed:",
            SUPERSEDED: "Restart superseded:",
        }[deployment.status]
        return f"{verb} {env} for the flag change {show(deployment.tag)}"
    if deployment.kind == ROLLBACK:
        verb = {
            STARTING: "Rolling back",
            ROLLING_OUT: "Rolling back",
            STUCK: "Rollback stuck:",
            COMPLETED: "Rolled back",
            FAILED: "Rollback failed:",
            SUPERSEDED: "Rollback superseded:",
        }[deployment.status]
        back = f" to #{deployment.rollback_of}" if deployment.rollback_of else ""
        return f"{verb} {env}{back} ({what(deployment, show=show)})"
    verb = {
        STARTING: "Deploying",
        ROLLING_OUT: "Deploying",
        STUCK: "Deploy stuck:",
        COMPLETED: "Deployed",
        FAILED: "Deploy failed:",
        SUPERSEDED: "Deploy superseded:",
    }[deployment.status]
    return f"{verb} {what(deployment, show=show)} to {env}"


def announcement(deployment: Deployment) -> dict[str, Any]:
    """The deployment's one message in its channel, in its current state."""
    who = actor_text(deployment.actor)
    if deployment.approved_by:
        who += " (approved by " + ", ".join(actor_text(a) for a in deployment.approved_by) + ")"
    fields = [
        f"*Who*\n{who}",
        "*Image*\n"
        f"{image_text(deployment.previous_image, deployment.previous_tag)} → "
        f"{image_text(deployment.image, deployment.tag)}",
        "*Task definition*\n"
        f"{code(short_task_definition(deployment.previous_task_definition))} → "
        f"{code(short_task_definition(deployment.task_definition))}",
        f"*Status*\n{escape(STATUS_WORD.get(deployment.status, deployment.status))}"
        + (
            f" · {counts_text(deployment.observed)}"
            if deployment.observed.get("desired") is not None
            else ""
        ),
    ]
    scan = deployment.scan or {}
    if scan:
        fields.append(f"*Scan*\n{escape(scan.get('text', '?'))}")
    if deployment.force_reason and deployment.forced:
        fields.append(
            f"*Forced* ({escape(', '.join(deployment.forced))})\n"
            f">{inert(deployment.force_reason, 500)}"
        )
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": clip(headline(deployment), SECTION_MAX)},
        },
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": clip(f, FIELD_MAX)} for f in fields[:10]],
        },
    ]
    if deployment.outcome:
        outcome = clip(deployment.outcome, SECTION_MAX)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": outcome}})
    context = [f"Deployment #{deployment.id}", f"started {slack_date(deployment.created_at)}"]
    if deployment.finished_at:
        took = duration((deployment.finished_at - deployment.created_at).total_seconds())
        context.append(f"finished {slack_date(deployment.finished_at)} after {took}")
    context.append(code(deployment.image))
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": clip(" · ".join(context), CONTEXT_MAX)}],
        }
    )
    return {"text": clip(headline(deployment, show=plain), TEXT_MAX), "blocks": blocks}


def progress_reply(items: list[dict[str, Any]]) -> dict[str, Any]:
    """One thread reply for one or more rollout observations that piled up unsent."""
    lines = []
    shown = items[-8:]
    if len(items) > len(shown):
        lines.append(f"… {len(items) - len(shown)} earlier updates")
    for item in shown:
        state = escape(item.get("state") or "?")
        lines.append(f"{slack_date(_parse(item.get('at')))} {state}: {item.get('text', '')}")
        lines.extend(f">{clip(s, 300)}" for s in item.get("stopped") or [])
    return {"text": clip("\n".join(lines), SECTION_MAX), "blocks": None}


def _parse(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def text_reply(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A thread reply of mrkdwn opsbot composed (outside words in it already escaped)."""
    return {"text": clip(str(items[-1]["text"]), SECTION_MAX), "blocks": None}


def direct_notice(deployment: Deployment, text: str) -> dict[str, Any]:
    """A direct message to the deployment's actor: its state, and `text` (mrkdwn)."""
    return {
        "text": clip(f"{headline(deployment)} (#{deployment.id})\n{text}", TEXT_MAX),
        "blocks": None,
    }


def unsettled_alert(deployment: Deployment, *, since: datetime, error: str) -> dict[str, Any]:
    """The alert for a "starting" deployment opsbot has not been able to settle for
    `stuck_after_min` past its grace; `error` says why (mrkdwn opsbot composed)."""
    take_over = f'/deploy {deployment.app} {deployment.env} <tag> --force "<reason>"'
    text = (
        f":warning: {_status_line(deployment, show=plain)}: deployment #{deployment.id} "
        f"stopped while it started, and opsbot cannot tell what it did (since "
        f"{slack_date(since)}): {clip(error, 500)}\nIt holds {code(deployment.label)}. "
        f"{actor_text(deployment.actor)}, have a look: "
        f"{code(f'/deploy status {deployment.app} {deployment.env}')}; a forced deploy "
        f"({code(take_over)}) may take over."
    )
    return {"text": clip(text, TEXT_MAX), "blocks": None}


def stuck_alert(deployment: Deployment, *, minutes: float) -> dict[str, Any]:
    text = (
        f":warning: {_status_line(deployment, show=plain)}: deployment #{deployment.id} "
        f"has not moved for {int(minutes)} min ({counts_text(deployment.observed)}). "
        f"{actor_text(deployment.actor)}, have a look: "
        f"{code(f'/deploy status {deployment.app} {deployment.env}')}, or "
        f"{code(f'/rollback {deployment.app} {deployment.env}')}."
    )
    return {"text": clip(text, TEXT_MAX), "blocks": None}


def unreadable_alert(deployment: Deployment, *, since: datetime, aws_error: str) -> dict[str, Any]:
    """The alert for a rollout the watch has not been able to read for `stuck_after_min`.

    `aws_error` is AWS's error code; `ServiceNotFound` when the service is gone.
    """
    take_over = f'/deploy {deployment.app} {deployment.env} <tag> --force "<reason>"'
    why = (
        f"its service was not found ({code(aws_error)})"
        if aws_error == SERVICE_NOT_FOUND
        else code(aws_error)
    )
    text = (
        f":warning: {_status_line(deployment, show=plain)}: opsbot cannot read ECS: {why} "
        f"(since {slack_date(since)}), so nobody sees how deployment #{deployment.id} goes. "
        f"{actor_text(deployment.actor)}, have a look in the ECS console; a forced deploy "
        f"({code(take_over)}) may take over."
    )
    return {"text": clip(text, TEXT_MAX), "blocks": None}


def stopped_line(short_id: str, reason: str, containers: tuple[str, ...]) -> str:
    """A stopped task as mrkdwn: ECS's reason and the containers' exit reasons, inert."""
    line = f"task {escape(short_id)} stopped: {inert(reason, 300)}"
    if containers:
        line += " (" + inert("; ".join(containers), 600) + ")"
    return line


# -- locks -------------------------------------------------------------------------------


def lock_text(held: DeployLock) -> str:
    reason = f': "{inert(held.reason, 500)}"' if held.reason else ""
    return f"locked by {actor_text(held.holder)} since {slack_date(held.acquired_at)}{reason}"


def busy_text(deployment: Deployment) -> str:
    state = escape(STATUS_WORD.get(deployment.status, deployment.status))
    return (
        f"{code(deployment.label)} is busy: deployment #{deployment.id} ({what(deployment)}) by "
        f"{actor_text(deployment.actor)} since {slack_date(deployment.created_at)} is {state}. "
        "One deploy at a time: wait for it to finish"
        + (', or add `--force "<reason>"` to take over.' if deployment.status == STUCK else ".")
    )


def under_lock_text(deployment: Deployment) -> str:
    """A deployment that runs on while its environment is locked on purpose."""
    state = escape(STATUS_WORD.get(deployment.status, deployment.status).lower())
    return (
        f"Deployment #{deployment.id} ({what(deployment)}) by {actor_text(deployment.actor)} "
        f"is {state}: the lock does not stop it. Follow it with "
        f"{code(f'/deploy status {deployment.app} {deployment.env}')}."
    )


def _took_over_by(by: Deployment) -> str:
    """How `by` took another deployment over: a rollback of it, or a forced deploy."""
    if by.kind == ROLLBACK and "lock" not in (by.forced or []):
        back = f" to #{by.rollback_of}" if by.rollback_of else ""
        return f"rolled back by {actor_text(by.actor)}: rollback #{by.id}{back} ({what(by)})"
    verb = "rollback" if by.kind == ROLLBACK else "deploy"
    return f"taken over by a forced {verb} of {actor_text(by.actor)}: #{by.id} ({what(by)})"


def superseded_text(*, by: Deployment, was: str) -> str:
    """The outcome of a deployment `by` took over once `by`'s service update landed."""
    state = STATUS_WORD.get(was, was).lower()
    return f"Superseded while {escape(state)}: {_took_over_by(by)}."


def supersedes_text(by: Deployment, *, old: Deployment, was: str) -> str:
    """Said in the thread of `by` once its update landed over the deployment it took over."""
    state = STATUS_WORD.get(was, was).lower()
    return f"Deployment #{old.id} ({what(old)}), {escape(state)}, is superseded by this one."


def kept_text(kept: Deployment) -> str:
    """The deployment a takeover was for keeps the environment: the update never landed."""
    state = escape(STATUS_WORD.get(kept.status, kept.status).lower())
    return (
        f"Deployment #{kept.id} ({what(kept)}) was not taken over: it is still {state}, "
        f"watched, and holds {code(kept.label)}."
    )


def reminder(held: DeployLock, *, age_min: float) -> dict[str, Any]:
    text = (
        f":lock: You have held {code(held.label)} locked for {duration(age_min * 60)}"
        + (f' ("{inert(held.reason, 500)}")' if held.reason else "")
        + f". Nobody else can deploy it until {code(f'/deploy unlock {held.app} {held.env}')}."
    )
    return {"text": clip(text, TEXT_MAX), "blocks": None}


def lock_notice(text: str) -> dict[str, Any]:
    """A notice opsbot composed as mrkdwn (outside words in it already escaped)."""
    return {"text": clip(text, TEXT_MAX), "blocks": None}


# -- answers to commands -------------------------------------------------------------------


def status_message(view: StatusView) -> dict[str, Any]:
    lines = [f"*{escape(view.label)}*"]
    if not view.revisions:
        lines.append("The service reports no deployments.")
    for revision in view.revisions:
        by = (
            f"by {actor_text(revision.by)} (#{revision.deployment.id})"
            if revision.by and revision.deployment
            else "outside opsbot"
        )
        role = "now" if revision.ecs_status == "PRIMARY" else "draining"
        lines.append(
            f"• {role}: {code(short_task_definition(revision.task_definition))} · "
            f"{code(short_image(revision.image))} · {escape(revision.rollout_state or '?')} · "
            f"{revision.running}/{revision.desired} running"
            f"{f', {revision.pending} pending' if revision.pending else ''}"
            f" · since {slack_date(revision.since)} {by}"
        )
        if revision.image:
            lines.append(f"   {code(revision.image)}")
    if view.active is not None:
        lines.append(
            f"• in progress: deployment #{view.active.id} ({what(view.active)}) by "
            f"{actor_text(view.active.actor)}: "
            f"{escape(STATUS_WORD.get(view.active.status, view.active.status))}"
        )
    if view.manual_lock is not None:
        lines.append(f"• :lock: {lock_text(view.manual_lock)}")
    for action in view.waiting:
        lines.append(f"• waiting for clicks: request #{action.id}: {action.summary}")
    text = "\n".join(lines)
    return {"text": clip(text, ANSWER_MAX), "blocks": None}


def history_message(app: str, env: str, deployments: list[Deployment]) -> dict[str, Any]:
    if not deployments:
        return {"text": f"No deployments of {code(f'{app}/{env}')} yet.", "blocks": None}
    lines = [f"*Deployments of {escape(f'{app}/{env}')}* (newest first)"]
    for d in deployments:
        took = ""
        if d.finished_at:
            took = f" in {duration((d.finished_at - d.created_at).total_seconds())}"
        kind = {ROLLBACK: "rollback", FLAG_ROLL: "flag roll"}.get(d.kind, "deploy")
        forced = " · forced" if d.forced else ""
        lines.append(
            f"#{d.id} {slack_date(d.created_at)} · {kind} {code(d.tag or short_digest(d.digest))} "
            f"({code(short_digest(d.digest))}, {code(short_task_definition(d.task_definition))}) · "
            f"{actor_text(d.actor)} · {escape(STATUS_WORD.get(d.status, d.status))}{took}{forced}"
        )
    return {"text": clip("\n".join(lines), ANSWER_MAX), "blocks": None}


def releases_message(view: ReleasesView) -> dict[str, Any]:
    lines = [f"*Recent images of {escape(view.app)}*"]
    for repository, rows in view.by_repository.items():
        lines.append(code(repository))
        if not rows:
            lines.append("• no tagged images")
        for row in rows:
            tags = ", ".join(code(t) for t in row.image.tags[:5])
            running = (
                " · :large_green_circle: running in "
                + ", ".join(f"*{escape(e)}*" for e in row.running_in)
                if row.running_in
                else ""
            )
            lines.append(
                f"• {tags} · {code(short_digest(row.image.digest))} · pushed "
                f"{slack_date(row.image.pushed_at)}{running}"
            )
    for problem in view.problems:
        lines.append(f":warning: {problem}")
    return {"text": clip("\n".join(lines), ANSWER_MAX), "blocks": None}
