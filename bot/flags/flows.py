"""A flag change's life: checked, confirmed when protected, written, rolled out, watched.

- `list_flags` reads the flags (nothing changes).
- `submit` checks a change (flag exists, value fits, the caller's right) and
  either makes it or asks for the clicks its environment needs; a confirmed
  change comes back through `execute`, which checks everything again.
- AppConfig: a new hosted version from the latest one (refused if another was
  written since the change was asked for), then a deployment with the
  environment's strategy, watched by the `flags.watch` job until COMPLETE or
  ROLLED_BACK.
- SSM: the parameter is overwritten and the service restarted under the
  deploy lock (bot/deploys/restarts.py), watched like a deploy.

Every change is audited (target `flag:<app>/<env>`) with the flag's before and after.
Answers and messages are mrkdwn: flag names, values and AWS's words in them are
escaped where they are composed.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.approvals import flows as approval_flows
from bot.approvals.render import actor_text
from bot.apps.errors import AppError
from bot.apps.registry import Target, get_target_or_raise
from bot.audit import service as audit
from bot.audit.models import AuditRecord
from bot.config import AppConfigFlags, SsmFlags
from bot.deploys import render as deploy_render
from bot.deploys.errors import DeployError
from bot.deploys.flows import refresh_incidents
from bot.deploys.restarts import (
    ChangeKind,
    ChangeSeen,
    Settled,
    register_change_kind,
    start_flag_roll,
)
from bot.flags import appconfig, render, ssm
from bot.flags.document import FlagDocument
from bot.flags.errors import FlagError, FlagFailed, FlagRefused
from bot.flags.requests import ON, SET, Change
from bot.outbox import service as outbox
from bot.slack_dates import slack_date
from bot.slack_text import code, escape, inert

if TYPE_CHECKING:
    from bot.apps.services import Services

log = logging.getLogger(__name__)

WATCH_JOB = "flags.watch"
CHANGE = "flag.change"
SSM_ROLL = "ssm-flag"  # the change of a flag roll: one SSM parameter overwritten


@dataclass(frozen=True)
class Prepared:
    """A change that passed its checks: exactly what will be written."""

    change: Change
    target: Target
    before: dict[str, Any]
    after: dict[str, Any]
    document: FlagDocument | None = None  # AppConfig: the new document


def flags_or_raise(target: Target) -> AppConfigFlags | SsmFlags:
    flags = target.settings.flags
    if flags is None:
        raise FlagRefused(
            f"{code(target.label)} has no feature flags configured (`flags:` of the environment)."
        )
    return flags


# -- reading -------------------------------------------------------------------------------


def _last_changes(services: Services, target: Target) -> dict[str, AuditRecord]:
    """The newest successful change of each flag made through opsbot."""
    with services.sessions() as db_session:
        query = (
            select(AuditRecord)
            .where(
                AuditRecord.target == f"flag:{target.label}",
                AuditRecord.action == CHANGE,
                AuditRecord.outcome == "ok",
            )
            .order_by(AuditRecord.at.desc(), AuditRecord.id.desc())
            .limit(500)
        )
        newest: dict[str, AuditRecord] = {}
        for entry in db_session.scalars(query):
            newest.setdefault(str((entry.detail or {}).get("flag")), entry)
        db_session.expunge_all()
        return newest


def list_flags(services: Services, *, app: str, env: str) -> str:
    """`/flag list`: every flag, on or off, its attributes, who changed it last."""
    target = get_target_or_raise(services.config, app=app, env=env)
    flags = flags_or_raise(target)
    changes = _last_changes(services, target)
    lines: list[render.FlagLine] = []
    notes: list[str] = []
    if isinstance(flags, AppConfigFlags):
        client = services.aws.get("appconfig")
        latest = appconfig.latest_version(client, flags)
        for flag in latest.document.flags():
            ours = changes.get(flag.key)
            lines.append(
                render.FlagLine(
                    name=flag.key,
                    enabled=flag.enabled,
                    value="on" if flag.enabled else "off",
                    attributes=flag.values,
                    title=flag.name,
                    changed_by=ours.actor if ours else None,
                    changed_at=ours.at if ours else None,
                    by_opsbot=ours is not None,
                )
            )
        notes.append(
            f"Hosted version {latest.number}"
            + (f": {inert(latest.description, 500)}" if latest.description else "")
        )
        running = appconfig.running_rollout(client, flags)
        if running is not None:
            notes.append(
                f":hourglass_flowing_sand: AppConfig deployment {running.number} (version "
                f"{escape(running.version)}) is {escape(running.state)} ({running.percent:g}%)."
            )
        backend = "AWS AppConfig"
    else:
        for parameter in ssm.list_flags(services.aws.get("ssm"), service_name=flags.service_name):
            ours = changes.get(parameter.name)
            # opsbot's change is the last one only if SSM has seen no later write.
            mine = ours is not None and (ours.detail or {}).get("parameter_version") == (
                parameter.version
            )
            lines.append(
                render.FlagLine(
                    name=parameter.name,
                    enabled=parameter.enabled if parameter.value in ("true", "false") else None,
                    value=parameter.value,
                    attributes={},
                    title=None,
                    changed_by=ours.actor if mine and ours else parameter.modified_by,
                    changed_at=ours.at if mine and ours else parameter.modified_at,
                    by_opsbot=mine,
                )
            )
        backend = f"SSM {code(ssm.prefix(flags.service_name))}"
    return str(
        render.list_message(label=target.label, backend=backend, lines=lines, notes=notes)["text"]
    )


# -- checking ------------------------------------------------------------------------------


def prepare(services: Services, change: Change) -> Prepared:
    """Check a change against the flags as they are now; nothing is written."""
    target = get_target_or_raise(services.config, app=change.app, env=change.env)
    flags = flags_or_raise(target)
    services.access.require(change.actor, target, action="change feature flags of")
    if isinstance(flags, AppConfigFlags):
        latest = appconfig.latest_version(services.aws.get("appconfig"), flags)
        if change.seen_version is not None and latest.number != change.seen_version:
            raise FlagRefused(
                f"The flags of {code(target.label)} changed since this was asked: version "
                f"{latest.number} was written after version {change.seen_version}"
                + (f" ({inert(latest.description, 500)})" if latest.description else "")
                + ". Nothing was written: look again with `/flag list` and ask again."
            )
        current = latest.document.get_or_raise(change.flag)
        if change.verb == SET:
            document = latest.document.with_attributes(change.flag, change.attributes)
        else:
            document = latest.document.with_enabled(change.flag, change.verb == ON)
        new = document.get_or_raise(change.flag)
        before = {"enabled": current.enabled, **current.values}
        after = {"enabled": new.enabled, **new.values}
        prepared = Prepared(
            change=replace(change, seen_version=latest.number),
            target=target,
            before=before,
            after=after,
            document=document,
        )
    else:
        if change.verb == SET:
            raise FlagRefused(
                f"The flags of {code(target.label)} are SSM parameters, `true` or `false`: they "
                "have no attributes. Use `/flag on` or `/flag off`."
            )
        found = ssm.find_or_raise(
            ssm.list_flags(services.aws.get("ssm"), service_name=flags.service_name),
            change.flag,
            service_name=flags.service_name,
        )
        prepared = Prepared(
            change=replace(change, flag=found.name),
            target=target,
            before={"value": found.value},
            after={"value": "true" if change.verb == ON else "false"},
        )
    if prepared.before == prepared.after:
        raise FlagRefused(
            f"{code(prepared.change.flag)} of {code(target.label)} is already "
            f"{render.state_text(prepared.after)}: nothing to change."
        )
    return prepared


def _refused(services: Services, change: Change, reason: str) -> None:
    with services.sessions() as db_session:
        audit.record(
            db_session,
            at=services.clock.now(),
            actor=change.actor,
            action=CHANGE,
            target=change.audit_target,
            outcome="refused",
            detail={"flag": change.flag, "asked": change.what, "reason": reason},
        )
        db_session.commit()


def submit(services: Services, change: Change) -> str:
    """Check a change; make it, or ask for the clicks its environment needs."""
    try:
        prepared = prepare(services, change)
    except (FlagRefused, AppError) as exc:
        _refused(services, change, str(exc))
        raise
    settings = prepared.target.settings
    approvals_needed = 1 if settings.require_approval else 0
    if not settings.protected and not approvals_needed:
        return _execute(services, prepared, approved_by=[])
    channel = settings.release_channel or change.channel
    if channel is None:
        raise FlagRefused(
            f"{code(prepared.target.label)} needs a confirmation in Slack, but has no "
            "release_channel to ask in."
        )
    action = approval_flows.ask(
        services,
        kind="flag",  # bot/flags/confirm.py
        target=change.audit_target,
        summary=(
            f"{actor_text(change.actor)} asks to set flag {code(prepared.change.flag)} of "
            f"{code(prepared.target.label)} to *{render.state_text(prepared.after)}*"
        ),
        details=_details(prepared),
        payload=prepared.change.to_payload(),
        requested_by=change.actor,
        channel=channel,
        needs_confirmation=settings.protected,
        required_approvals=approvals_needed,
    )
    return (
        f"{code(prepared.target.label)} is protected: request #{action.id} waits for "
        f"{approval_flows.waits_for(action)} in {deploy_render.channel_text(channel)}."
    )


def _details(prepared: Prepared) -> list[str]:
    lines = [
        f"*Now* {render.state_text(prepared.before)}",
        f"*After* {render.state_text(prepared.after)}",
    ]
    if prepared.change.seen_version is not None:
        lines.append(
            f"*AppConfig* a new version on top of version {prepared.change.seen_version}, "
            "then a deployment with the environment's strategy"
        )
    else:
        lines.append("*SSM* the parameter is overwritten, then the service restarted")
    return lines


def execute(services: Services, change: Change, *, approved_by: list[str]) -> str:
    """Make a change whose clicks are in: every check again first."""
    try:
        prepared = prepare(services, change)
    except (FlagRefused, AppError) as exc:
        _refused(services, change, str(exc))
        raise
    return _execute(services, prepared, approved_by=approved_by)


def _execute(services: Services, prepared: Prepared, *, approved_by: list[str]) -> str:
    flags = flags_or_raise(prepared.target)
    if isinstance(flags, AppConfigFlags):
        return _execute_appconfig(services, prepared, flags, approved_by=approved_by)
    return _execute_ssm(services, prepared, flags, approved_by=approved_by)


def _audit_change(
    services: Services,
    db_session: Session,
    prepared: Prepared,
    *,
    outcome: str,
    approved_by: list[str],
    **detail: Any,
) -> AuditRecord:
    change = prepared.change
    return audit.record(
        db_session,
        at=services.clock.now(),
        actor=change.actor,
        action=CHANGE,
        target=change.audit_target,
        outcome=outcome,
        detail={
            "flag": change.flag,
            "asked": change.what,
            "before": prepared.before,
            "after": prepared.after,
            "approved_by": approved_by,
            **detail,
        },
    )


def _execute_appconfig(
    services: Services, prepared: Prepared, flags: AppConfigFlags, *, approved_by: list[str]
) -> str:
    change = prepared.change
    assert prepared.document is not None and change.seen_version is not None
    client = services.aws.get("appconfig")
    running = appconfig.running_rollout(client, flags)
    if running is not None:
        raise FlagRefused(
            f"AppConfig deployment {running.number} of {code(prepared.target.label)} is still "
            f"{escape(running.state)} ({running.percent:g}%); AppConfig allows one at a time. "
            "Nothing was written: try again when it is done."
        )
    who = f"opsbot for {change.actor}" + (
        f" (approved by {', '.join(approved_by)})" if approved_by else ""
    )
    try:
        version = appconfig.write_version(
            client,
            flags,
            document=prepared.document,
            latest=change.seen_version,
            description=f"{who}: {change.what}",
        )
        number = appconfig.start_rollout(
            client, flags, version=version, description=f"{who}: {change.what}"
        )
    except FlagError as exc:
        with services.sessions() as db_session:
            _audit_change(
                services,
                db_session,
                prepared,
                outcome="failed",
                approved_by=approved_by,
                reason=str(exc),
            )
            db_session.commit()
        raise
    now = services.clock.now()
    channel = prepared.target.settings.release_channel or change.channel
    info: dict[str, Any] = {
        "app": change.app,
        "env": change.env,
        "label": prepared.target.label,
        "flag": change.flag,
        "before": render.state_text(prepared.before),
        "after": render.state_text(prepared.after),
        "actor": change.actor,
        "approved_by": approved_by,
        "version": version,
        "deployment": number,
        "channel": channel,
        "key": f"flag-change:{change.app}/{change.env}:{number}:{uuid.uuid4().hex[:8]}",
    }
    with services.sessions() as db_session:
        _audit_change(
            services,
            db_session,
            prepared,
            outcome="ok",
            approved_by=approved_by,
            version=version,
            previous_version=change.seen_version,
            deployment=number,
        )
        if channel:
            outbox.post_or_update(
                db_session,
                key=str(info["key"]),
                channel=channel,
                message=render.change_announcement(info, state="DEPLOYING"),
                now=now,
            )
        db_session.commit()
    schedule_watch(services, info=info, last="")
    where = f": follow it in {deploy_render.channel_text(channel)}" if channel else ""
    return (
        f"Flag {code(change.flag)} of {code(prepared.target.label)} → "
        f"{render.state_text(prepared.after)}: version {version} written, AppConfig "
        f"deployment {number} started{where}."
    )


def _execute_ssm(
    services: Services, prepared: Prepared, flags: SsmFlags, *, approved_by: list[str]
) -> str:
    change = prepared.change
    enabled = prepared.after["value"] == "true"
    written: dict[str, int] = {}

    def write() -> None:
        written["version"] = ssm.write(
            services.aws.get("ssm"),
            service_name=flags.service_name,
            flag=change.flag,
            enabled=enabled,
        )

    channel = prepared.target.settings.release_channel or change.channel
    # What a crash mid-roll leaves to go by: see _inspect_ssm_roll and _settled_ssm_roll.
    record = {
        "kind": SSM_ROLL,
        "label": prepared.target.label,
        "service_name": flags.service_name,
        "flag": change.flag,
        "value": prepared.after["value"],
        "asked": change.what,
        "before": prepared.before,
        "after": prepared.after,
        "actor": change.actor,
        "approved_by": list(approved_by),
    }
    try:
        deployment = start_flag_roll(
            services,
            target=prepared.target,
            actor=change.actor,
            what=f"FF_{change.flag}={'true' if enabled else 'false'}",
            channel=channel,
            approved_by=approved_by,
            change=write,
            record=record,
        )
    except (DeployError, FlagError) as exc:
        refused = "version" not in written
        with services.sessions() as db_session:
            _audit_change(
                services,
                db_session,
                prepared,
                outcome="refused" if refused else "failed",
                approved_by=approved_by,
                reason=str(exc),
                parameter_version=written.get("version"),
            )
            db_session.commit()
        if refused:
            raise FlagRefused(f"Nothing was written: {exc}") from exc
        raise FlagFailed(str(exc)) from exc
    with services.sessions() as db_session:
        _audit_change(
            services,
            db_session,
            prepared,
            outcome="ok",
            approved_by=approved_by,
            parameter_version=written.get("version"),
            deployment=deployment.id,
        )
        db_session.commit()
    where = f": follow it in {deploy_render.channel_text(channel)}" if channel else ""
    return (
        f"{code(change.flag)} of {code(prepared.target.label)} is now "
        f"*{escape(prepared.after['value'])}* "
        f"(parameter version {written.get('version')}); restarting the service so its tasks "
        f"read it (deployment #{deployment.id}){where}."
    )


def _inspect_ssm_roll(services: Services, record: dict[str, Any]) -> ChangeSeen:
    """After a crash mid-roll: does the parameter hold the value that was asked?

    The roll was asked only for a value the parameter did not hold (`prepare`
    refuses a change to what is already there), so holding it now means it was
    written (by the roll, or by someone since: either way it is what tasks read).
    """
    flag = str(record["flag"])
    try:
        found = ssm.read(
            services.aws.get("ssm"), service_name=str(record["service_name"]), flag=flag
        )
    except FlagError as exc:
        raise DeployError(str(exc)) from exc
    return ChangeSeen(
        written=found.value == record["value"],
        state=(
            f"{code(flag)} of {code(str(record['label']))} is *{escape(found.value)}* in SSM "
            f"(parameter version {found.version})"
        ),
        detail={
            "flag": flag,
            "asked": record["value"],
            "value": found.value,
            "parameter_version": found.version,
        },
    )


def _settled_ssm_roll(db_session: Session, settled: Settled, now: datetime) -> None:
    """The `flag.change` line the crash kept the roll's caller from writing."""
    record, seen = settled.change, settled.seen
    done = seen.written and settled.restarted
    audit.record(
        db_session,
        at=now,
        actor=str(record["actor"]),
        action=CHANGE,
        target=f"flag:{record['label']}",
        outcome="ok" if done else "failed",
        detail={
            "flag": record["flag"],
            "asked": record["asked"],
            "before": record["before"],
            "after": record["after"],
            "approved_by": record.get("approved_by") or [],
            "parameter_version": seen.detail["parameter_version"] if seen.written else None,
            "deployment": settled.deployment.id,
            "interrupted": True,
            **({} if done else {"reason": settled.outcome}),
        },
    )


register_change_kind(
    ChangeKind(name=SSM_ROLL, inspect=_inspect_ssm_roll, settled=_settled_ssm_roll)
)


# -- watching an AppConfig deployment ------------------------------------------------------


def schedule_watch(services: Services, *, info: dict[str, Any], last: str) -> None:
    delay = timedelta(seconds=services.config.deploys.poll_interval_s)
    services.scheduler.schedule(
        WATCH_JOB,
        at=services.clock.now() + delay,
        job_id=f"flag-watch-{info['deployment']}-{uuid.uuid4().hex[:10]}",
        info=info,
        last=last,
    )


def observe(services: Services, *, info: dict[str, Any], last: str) -> str | None:
    """One look at the deployment: progress in the thread; the state, or None when it ended."""
    target = get_target_or_raise(services.config, app=info["app"], env=info["env"])
    flags = flags_or_raise(target)
    assert isinstance(flags, AppConfigFlags)
    rollout = appconfig.get_rollout(services.aws.get("appconfig"), flags, number=info["deployment"])
    seen = f"{rollout.state}:{rollout.percent:g}"
    now = services.clock.now()
    channel = info.get("channel")
    with services.sessions() as db_session:
        if seen != last and rollout.running and channel:
            outbox.reply_in_thread(
                db_session,
                key=info["key"],
                channel=channel,
                fold_key=f"{info['key']}:progress",
                item={
                    "text": f"{slack_date(now)} {escape(rollout.state)}: "
                    f"{rollout.percent:g}% of the targets"
                },
                render=render.progress_reply,
                now=now,
            )
        if rollout.running:
            db_session.commit()
            return seen
        if rollout.state == appconfig.COMPLETE:
            text = (
                f":white_check_mark: AppConfig deployment {rollout.number} is COMPLETE: "
                f"{code(info['flag'])} is {info['after']} everywhere in {code(info['label'])}."
            )
            outcome = "ok"
        elif rollout.rolled_back:
            why = next((e for e in rollout.events if "ROLLBACK" in e or "STOP" in e), "")
            text = (
                f":rewind: AppConfig deployment {rollout.number} was ROLLED BACK: "
                f"{code(info['flag'])} is back to {info['before']} in {code(info['label'])}."
                + (f" ({inert(why, 500)})" if why else "")
            )
            outcome = "rolled_back"
        else:
            text = f"AppConfig deployment {rollout.number} ended {escape(rollout.state)}."
            outcome = "failed"
        audit.record(
            db_session,
            at=now,
            actor="opsbot",
            action="flag.deployment",
            target=f"flag:{info['label']}",
            outcome=outcome,
            detail={
                "flag": info["flag"],
                "deployment": rollout.number,
                "version": info["version"],
                "state": rollout.state,
                "requested_by": info.get("actor"),
            },
        )
        refresh_incidents(db_session, app=str(info["app"]), env=str(info["env"]), now=now)
        if channel:
            outbox.post_or_update(
                db_session,
                key=info["key"],
                channel=channel,
                message=render.change_announcement(info, state=rollout.state),
                now=now,
            )
            outbox.reply_in_thread(
                db_session,
                key=info["key"],
                channel=channel,
                fold_key=None,
                item={"text": text},
                render=deploy_render.text_reply,
                now=now,
            )
        db_session.commit()
    return None
