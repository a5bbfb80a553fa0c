"""Block Kit and text for deploys: pure functions of deployments, locks and views."""

from __future__ import annotations

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
from bot.incidents.render import clip, duration
from bot.slack_dates import slack_date

# Answers without blocks: Slack shows up to 40,000 characters; keep them readable.
ANSWER_MAX = 8000

STATUS_ICON = {
    STARTING: ":hourglass_flowing_sand:",
    ROLLING_OUT: ":rocket:",
    STUCK: ":warning:",
    COMPLETED: ":white_check_mark:",
    FAILED: ":x:",
    SUPERSEDED: ":fast_forward:",
}
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
        return channel
    return f"<#{channel}>"


def what(deployment: Deployment) -> str:
    """``api 1.2.3`` (the tag, or the short digest)."""
    version = deployment.tag or short_digest(deployment.digest)
    return f"`{deployment.app}` `{version}`"


def headline(deployment: Deployment) -> str:
    icon = STATUS_ICON.get(deployment.status, "")
    env = f"`{deployment.label}`"
    if deployment.kind == FLAG_ROLL:
        verb = {
            STARTING: "Restarting",
            ROLLING_OUT: "Restarting",
            STUCK: "Restart stuck:",
            COMPLETED: "Restarted",
            FAILED: "Restart failed:",
            SUPERSEDED: "Restart superseded:",
        }[deployment.status]
        return f"{icon} {verb} {env} for the flag change `{deployment.tag}`"
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
        return f"{icon} {verb} {env}{back} ({what(deployment)})"
    verb = {
        STARTING: "Deploying",
        ROLLING_OUT: "Deploying",
        STUCK: "Deploy stuck:",
        COMPLETED: "Deployed",
        FAILED: "Deploy failed:",
        SUPERSEDED: "Deploy superseded:",
    }[deployment.status]
    return f"{icon} {verb} {what(deployment)} to {env}"


def _plain(text: str) -> str:
    return text.replace("`", "").replace("*", "")


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
        f"`{short_task_definition(deployment.previous_task_definition)}` → "
        f"`{short_task_definition(deployment.task_definition)}`",
        f"*Status*\n{STATUS_WORD.get(deployment.status, deployment.status)}"
        + (
            f" · {counts_text(deployment.observed)}"
            if deployment.observed.get("desired") is not None
            else ""
        ),
    ]
    scan = deployment.scan or {}
    if scan:
        fields.append(f"*Scan*\n{scan.get('text', '?')}")
    if deployment.force_reason and deployment.forced:
        fields.append(
            f"*Forced* ({', '.join(deployment.forced)})\n>{clip(deployment.force_reason, 500)}"
        )
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(headline(deployment), 3000)}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": clip(f, 2000)} for f in fields[:10]],
        },
    ]
    if deployment.outcome:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": clip(deployment.outcome, 3000)}}
        )
    context = [f"Deployment #{deployment.id}", f"started {slack_date(deployment.created_at)}"]
    if deployment.finished_at:
        took = duration((deployment.finished_at - deployment.created_at).total_seconds())
        context.append(f"finished {slack_date(deployment.finished_at)} after {took}")
    context.append(f"`{deployment.image}`")
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": clip(" · ".join(context), 2000)}],
        }
    )
    return {"text": clip(_plain(headline(deployment)), 3000), "blocks": blocks}


def progress_reply(items: list[dict[str, Any]]) -> dict[str, Any]:
    """One thread reply for one or more rollout observations that piled up unsent."""
    lines = []
    shown = items[-8:]
    if len(items) > len(shown):
        lines.append(f"… {len(items) - len(shown)} earlier updates")
    for item in shown:
        at = slack_date(_parse(item.get("at")))
        line = f"{at} {item.get('state') or '?'}: {item.get('text', '')}"
        lines.append(line)
        lines.extend(f">{clip(s, 300)}" for s in item.get("stopped") or [])
    return {"text": clip("\n".join(lines), 3000), "blocks": None}


def _parse(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def text_reply(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"text": clip(str(items[-1]["text"]), 3000), "blocks": None}


def stuck_alert(deployment: Deployment, *, minutes: float) -> dict[str, Any]:
    text = (
        f":warning: {_plain(headline(deployment))}: deployment #{deployment.id} has not moved for "
        f"{int(minutes)} min ({counts_text(deployment.observed)}). "
        f"{actor_text(deployment.actor)}, have a look: `/deploy status {deployment.app} "
        f"{deployment.env}`, or `/rollback {deployment.app} {deployment.env}`."
    )
    return {"text": clip(text, 3000), "blocks": None}


def stopped_line(short_id: str, reason: str, containers: tuple[str, ...]) -> str:
    line = f"task {short_id} stopped: {reason}"
    if containers:
        line += " (" + "; ".join(containers) + ")"
    return line


# -- locks -------------------------------------------------------------------------------


def lock_text(held: DeployLock) -> str:
    reason = f': "{held.reason}"' if held.reason else ""
    return f"locked by {actor_text(held.holder)} since {slack_date(held.acquired_at)}{reason}"


def busy_text(deployment: Deployment) -> str:
    state = STATUS_WORD.get(deployment.status, deployment.status)
    return (
        f"`{deployment.label}` is busy: deployment #{deployment.id} ({what(deployment)}) by "
        f"{actor_text(deployment.actor)} since {slack_date(deployment.created_at)} is {state}. "
        "One deploy at a time: wait for it to finish"
        + (', or add `--force "<reason>"` to take over.' if deployment.status == STUCK else ".")
    )


def reminder(held: DeployLock, *, age_min: float) -> dict[str, Any]:
    text = (
        f":lock: You have held `{held.label}` locked for {duration(age_min * 60)}"
        + (f' ("{held.reason}")' if held.reason else "")
        + f". Nobody else can deploy it until `/deploy unlock {held.app} {held.env}`."
    )
    return {"text": clip(text, 3000), "blocks": None}


def lock_notice(text: str) -> dict[str, Any]:
    return {"text": clip(text, 3000), "blocks": None}


# -- answers to commands -------------------------------------------------------------------


def status_message(view: StatusView) -> dict[str, Any]:
    lines = [f"*{view.label}*"]
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
            f"• {role}: `{short_task_definition(revision.task_definition)}` · "
            f"`{short_image(revision.image)}` · {revision.rollout_state or '?'} · "
            f"{revision.running}/{revision.desired} running"
            f"{f', {revision.pending} pending' if revision.pending else ''}"
            f" · since {slack_date(revision.since)} {by}"
        )
        if revision.image:
            lines.append(f"   `{revision.image}`")
    if view.active is not None:
        lines.append(
            f"• in progress: deployment #{view.active.id} ({what(view.active)}) by "
            f"{actor_text(view.active.actor)}: "
            f"{STATUS_WORD.get(view.active.status, view.active.status)}"
        )
    if view.manual_lock is not None:
        lines.append(f"• :lock: {lock_text(view.manual_lock)}")
    for action in view.waiting:
        lines.append(f"• waiting for clicks: request #{action.id}: {action.summary}")
    text = "\n".join(lines)
    return {"text": clip(text, ANSWER_MAX), "blocks": None}


def history_message(app: str, env: str, deployments: list[Deployment]) -> dict[str, Any]:
    if not deployments:
        return {"text": f"No deployments of `{app}/{env}` yet.", "blocks": None}
    lines = [f"*Deployments of {app}/{env}* (newest first)"]
    for d in deployments:
        took = ""
        if d.finished_at:
            took = f" in {duration((d.finished_at - d.created_at).total_seconds())}"
        kind = {ROLLBACK: "rollback", FLAG_ROLL: "flag roll"}.get(d.kind, "deploy")
        forced = " · forced" if d.forced else ""
        lines.append(
            f"#{d.id} {slack_date(d.created_at)} · {kind} `{d.tag or short_digest(d.digest)}` "
            f"(`{short_digest(d.digest)}`, `{short_task_definition(d.task_definition)}`) · "
            f"{actor_text(d.actor)} · {STATUS_WORD.get(d.status, d.status)}{took}{forced}"
        )
    return {"text": clip("\n".join(lines), ANSWER_MAX), "blocks": None}


def releases_message(view: ReleasesView) -> dict[str, Any]:
    lines = [f"*Recent images of {view.app}*"]
    for repository, rows in view.by_repository.items():
        lines.append(f"`{repository}`")
        if not rows:
            lines.append("• no tagged images")
        for row in rows:
            tags = ", ".join(f"`{t}`" for t in row.image.tags[:5])
            running = (
                " · :large_green_circle: running in " + ", ".join(f"*{e}*" for e in row.running_in)
                if row.running_in
                else ""
            )
            lines.append(
                f"• {tags} · `{short_digest(row.image.digest)}` · pushed "
                f"{slack_date(row.image.pushed_at)}{running}"
            )
    for problem in view.problems:
        lines.append(f":warning: {problem}")
    return {"text": clip("\n".join(lines), ANSWER_MAX), "blocks": None}
