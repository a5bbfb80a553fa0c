"""A flag change's life: checked, confirmed when protected, written, rolled out, watched.

- `list_flags` reads the flags (nothing changes).
- `submit` checks a change (flag exists, value fits, the caller's right) and
  either makes it or asks for the clicks its environment needs; a confirmed
  change comes back through `execute`, which checks everything again (and that
  its environment demands no click it was not asked under).
- AppConfig: a new hosted version made from the DEPLOYED one (refused if another
  version was written, or another deployed, since the change was asked for),
  then a deployment with the environment's strategy, watched by the
  `flags.watch` job until COMPLETE or ROLLED_BACK. The change's intent (a
  `flag.start` line) commits before StartDeployment: a deployment AppConfig
  started whose `flag.change` line never committed (the process died, the
  database failed) is settled from it by `settle_intent`, from AppConfig's
  deployments of the version: recorded, announced and watched, or audited as
  never started. A newer hosted version that was never deployed
  (StartDeployment refused, or staged in the console) is not shipped under this
  change: the request, the answer and the audit name it and what it holds.
- SSM: the parameter is overwritten and the service restarted under the
  deploy lock (bot/deploys/restarts.py), watched like a deploy.

Every change is audited (target `flag:<app>/<env>`) with the flag's before and after,
refusals included; a failure is also logged (WARNING) and every outcome counted
(`opsbot_flag_changes{outcome}`, once its audit line commits).
Answers and messages are mrkdwn: flag names, values and AWS's words in them are
escaped where they are composed.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased, sessionmaker

from bot.adapters.aws import AWS_ERRORS, error_code, longest_call_s, may_have_been_done
from bot.approvals import flows as approval_flows
from bot.approvals.render import actor_text
from bot.approvals.service import is_slack_user
from bot.apps.errors import AppError, RightUnverifiable
from bot.apps.registry import Target, get_target_or_raise
from bot.audit import service as audit
from bot.audit.models import AuditRecord
from bot.config import AppConfigFlags, SsmFlags
from bot.db import committed
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
from bot.flags.document import FlagDocument, differences, state_of
from bot.flags.errors import (
    FlagConflict,
    FlagError,
    FlagFailed,
    FlagRefused,
    FlagWriteUnknown,
    aws_call,
)
from bot.flags.requests import ON, SET, Change
from bot.outbox import service as outbox
from bot.scheduler.deferred import schedule_after_commit
from bot.slack_dates import slack_date
from bot.slack_text import code, escape, inert

if TYPE_CHECKING:
    from bot.approvals.models import PendingAction
    from bot.apps.services import Services
    from bot.observability.metrics import Metrics

log = logging.getLogger(__name__)

WATCH_JOB = "flags.watch"
WATCH_JOB_PREFIX = "flag-watch-"
CHANGE = "flag.change"
DEPLOYMENT = "flag.deployment"
# An AppConfig change's intent, committed before StartDeployment (outcome "starting");
# the change's `flag.change` line names it (`intent`), and settles it.
START = "flag.start"
STARTING = "starting"
SETTLE_JOB = "flags.settle"
# What `settle_intent` answers while a change may still be at work (see _start_patience).
WAITING = "waiting"
# AWS calls a change makes between its intent and its outcome line: StartDeployment,
# then, its answer lost, its look (ListDeployments, GetDeployment).
START_CALLS = 3
SETTLE_BATCH = 200  # intents a start settles; newest first, the rest at a later start
# opsbot_flag_changes{outcome}: done (AppConfig: its deployment COMPLETE; SSM: written
# and restarting, the roll's end is the deploy watcher's), refused, failed, rolled_back;
# and stuck: a watch that could not read its AppConfig deployment for stuck_after_min.
_COUNTED = "flag_outcomes"  # Session.info: outcomes counted once the session commits
SSM_ROLL = "ssm-flag"  # the change of a flag roll: one SSM parameter overwritten


@dataclass(frozen=True)
class Prepared:
    """A change that passed its checks: exactly what will be written."""

    change: Change
    target: Target
    before: dict[str, Any]
    after: dict[str, Any]
    document: FlagDocument | None = None  # AppConfig: the new document
    # AppConfig: a newer hosted version than the deployed one, left out of this change:
    # {"version", "description", "deployed_version", "differences"} (document.differences).
    undeployed: dict[str, Any] | None = None
    never_deployed: bool = False  # AppConfig: nothing deployed yet; the only hosted version


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
        current = appconfig.read_current(client, flags)
        shown = current.shown  # the deployed version (never deployed: the newest hosted one)
        for flag in shown.document.flags():
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
        described = f": {inert(shown.description, 500)}" if shown.description else ""
        if current.deployed is None:
            notes.append(
                f"Hosted version {shown.number}{described} (nothing is deployed to "
                f"{code(target.label)} yet)"
            )
        else:
            notes.append(f"Deployed version {shown.number}{described}")
        undeployed = _undeployed(current)
        if undeployed is not None:
            notes.append(f":warning: Hosted {render.undeployed_text(undeployed)}.")
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


def prepare(services: Services, change: Change, *, waited: bool = False) -> Prepared:
    """Check a change against the flags as they are now; nothing is written.

    `waited`: it waited for clicks, so the right checked is the requester's, said as
    theirs to whoever clicked last.
    """
    target = get_target_or_raise(services.config, app=change.app, env=change.env)
    flags = flags_or_raise(target)
    doing = f"change feature flags of {code(target.label)}"
    with approval_flows.as_requesters_right(change.actor, doing=doing, waited=waited):
        services.access.require(change.actor, target, action="change feature flags of")
    _require_pinned_aws(services, target)
    if isinstance(flags, AppConfigFlags):
        current = appconfig.read_current(services.aws.get("appconfig"), flags)
        latest = current.newest
        if change.seen_version is not None and latest.number != change.seen_version:
            raise FlagRefused(
                f"The flags of {code(target.label)} changed since this was asked: version "
                f"{latest.number} was written after version {change.seen_version}"
                + (f" ({inert(latest.description, 500)})" if latest.description else "")
                + ". Nothing was written: look again with `/flag list` and ask again."
            )
        base = _base_or_raise(target, current)
        if change.deployed_version is not None and base.number != change.deployed_version:
            raise FlagRefused(
                _changed_since_text(
                    change,
                    target,
                    made=change.deployed_version,
                    now=f"version {base.number} is deployed",
                    changed=f"the flags of {code(target.label)} were",  # one version for all
                )
            )
        if change.verb == SET:
            document = base.document.with_attributes(change.flag, change.attributes)
        else:
            document = base.document.with_enabled(change.flag, change.verb == ON)
        prepared = Prepared(
            change=replace(change, seen_version=latest.number, deployed_version=base.number),
            target=target,
            before=state_of(base.document.get_or_raise(change.flag)),
            after=state_of(document.get_or_raise(change.flag)),
            document=document,
            undeployed=_undeployed(current),
            never_deployed=current.deployed is None,
        )
    else:
        if change.verb == SET:
            raise FlagRefused(
                f"The flags of {code(target.label)} are SSM parameters, `true` or `false`: they "
                "have no attributes. Use `/flag on` or `/flag off`."
            )
        found = ssm.find_or_raise(
            # Names, values and versions: the writers' history is one call per flag.
            ssm.list_flags(
                services.aws.get("ssm"), service_name=flags.service_name, with_writers=False
            ),
            change.flag,
            service_name=flags.service_name,
        )
        if change.parameter_version is not None and found.version != change.parameter_version:
            raise FlagRefused(
                _changed_since_text(
                    replace(change, flag=found.name),
                    target,
                    made=change.parameter_version,
                    now=f"SSM holds parameter version {found.version}",
                )
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
            f"{render.state_text(prepared.after)}{_where(prepared)}: nothing to change."
            + (
                f" (Hosted {render.undeployed_text(prepared.undeployed)}.)"
                if prepared.undeployed
                else ""
            )
        )
    return prepared


def _changed_since_text(
    change: Change, target: Target, *, made: int, now: str, changed: str | None = None
) -> str:
    """The refusal of a change made from version `made` when AWS holds another one `now`;
    `changed` says what moved since (default: the flag itself).

    An undo names the change it undoes: writing over a later change would undo that
    one instead, unseen.
    """
    if change.undoes is None:
        return (
            f"The flags deployed to {code(target.label)} changed since this was asked: "
            f"{now} now, not version {made}. "
            "Nothing was written: look again with `/flag list` and ask again."
        )
    moved = changed or f"{code(change.flag)} of {code(target.label)} was"
    return (
        f"Nothing was written: {moved} changed after "
        f"the change this undoes, which left version {made}: {now} now (a change made "
        "outside opsbot, or just now). Undoing would overwrite that later change: look with "
        f"`/flag list`, and use `/flag {change.verb} {escape(change.flag)}` if it should still "
        f"be {change.verb}."
    )


def _base_or_raise(target: Target, current: appconfig.Current) -> appconfig.Version:
    """The version a change is made from: the deployed one.

    Never deployed (Terraform deploys the version it writes, so rarely): the only
    hosted version, whose whole document the first deployment ships; with
    several, which one is meant cannot be told, and the change is refused.
    """
    if current.deployed is not None:
        return current.deployed
    if current.hosted == 1:
        return current.newest
    newest = current.newest
    raise FlagRefused(
        f"Nothing of the flags of {code(target.label)} is deployed yet, and AppConfig holds "
        f"{current.hosted} hosted versions (the newest is version {newest.number}"
        + (f": {inert(newest.description, 300)}" if newest.description else "")
        + "): opsbot makes a change from the deployed version and cannot tell which of them "
        "is meant. Deploy one in AppConfig first. Nothing was written."
    )


def _undeployed(current: appconfig.Current) -> dict[str, Any] | None:
    """The newest hosted version when it is not the deployed one, and how it differs."""
    if not current.undeployed or current.deployed is None:
        return None
    found = differences(current.deployed.document, current.newest.document)
    return {
        "version": current.newest.number,
        "description": (current.newest.description or "")[:300] or None,
        "deployed_version": current.deployed.number,
        "differences": found[:50],
        **({"more_differences": len(found) - 50} if len(found) > 50 else {}),
    }


def _where(prepared: Prepared) -> str:
    """Which AppConfig version a state is of ("" for SSM)."""
    if prepared.change.deployed_version is None:
        return ""
    if prepared.never_deployed:
        return f" in version {prepared.change.deployed_version} (nothing is deployed yet)"
    return f" in the deployed version {prepared.change.deployed_version}"


# -- outcomes: audited, logged when they fail, counted -------------------------------------


def _count(db_session: Session, outcome: str) -> None:
    """Count `outcome` in opsbot_flag_changes once this session commits."""
    committed.note(db_session, _COUNTED, outcome)


def _require_pinned_aws(services: Services, target: Target) -> None:
    """opsbot's AWS clients must reach the account and region `aws:` names, if it does:
    a flag store of the same name elsewhere is not this environment's."""
    pinned = services.config.aws
    with aws_call("say which account opsbot's AWS credentials are of"):
        problem = services.aws.elsewhere(account_id=pinned.account_id, region=pinned.region)
    if problem is not None:
        raise FlagRefused(
            f"{code(target.label)} cannot be changed from here: {escape(problem)}. "
            "Nothing was written."
        )


def count_outcomes_after_commit(sessions: sessionmaker[Session], metrics: Metrics) -> None:
    """Count flag changes' outcomes (`opsbot_flag_changes`) once their audit lines commit."""
    committed.on_commit(
        sessions, _COUNTED, lambda outcome: metrics.flag_changes.labels(outcome).inc()
    )


def _aws_code(exc: BaseException) -> str:
    """The AWS error code behind a failure (a FlagError wraps the ClientError), or "-".

    A call AWS never answered has no code: its botocore error's name stands for it
    (ReadTimeoutError, EndpointConnectionError).
    """
    seen: BaseException | None = exc
    while seen is not None:
        found = error_code(seen)
        if found:
            return found
        if isinstance(seen, AWS_ERRORS):
            return type(seen).__name__
        seen = seen.__cause__
    return "-"


def _log_failure(
    change: Change, *, step: str, exc: BaseException, version: int | None = None
) -> None:
    """One WARNING line: what, where, who, the version written (AppConfig or SSM), AWS's code."""
    log.warning(
        "flag change %r of %s by %s failed %s: version %s, AWS error %s",
        change.what,
        change.label,
        change.actor,
        step,
        version if version is not None else "-",
        _aws_code(exc),
        extra={"target": change.audit_target, "slack_user": change.actor},
    )


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
        _count(db_session, "refused")
        db_session.commit()
    log.info(
        "flag change %r of %s by %s refused",
        change.what,
        change.label,
        change.actor,
        extra={"target": change.audit_target, "slack_user": change.actor},
    )


def _read_failed(services: Services, change: Change, exc: FlagFailed) -> None:
    """AWS failed while the flags were read: nothing was written."""
    with services.sessions() as db_session:
        audit.record(
            db_session,
            at=services.clock.now(),
            actor=change.actor,
            action=CHANGE,
            target=change.audit_target,
            outcome="failed",
            detail={"flag": change.flag, "asked": change.what, "reason": str(exc)},
        )
        _count(db_session, "failed")
        db_session.commit()
    _log_failure(change, step="reading the flags (nothing written)", exc=exc)


def _unverifiable(
    services: Services, change: Change, exc: RightUnverifiable, *, action: PendingAction | None
) -> None:
    """Slack could not say whether the requester may change the flags: nothing was read or
    written. Audited and counted failed, logged (WARNING)."""
    request = None if action is None else action.id
    detail: dict[str, Any] = {
        "flag": change.flag,
        "asked": change.what,
        "reason": str(exc),
        "unverifiable": exc.reason,
    }
    if request is not None:
        detail["request"] = request
    with services.sessions() as db_session:
        audit.record(
            db_session,
            at=services.clock.now(),
            actor=change.actor,
            action=CHANGE,
            target=change.audit_target,
            outcome="failed",
            detail=detail,
        )
        _count(db_session, "failed")
        db_session.commit()
    log.warning(
        "flag change %r of %s by %s (request %s) failed: opsbot could not check the "
        "requester's right: %s",
        change.what,
        change.label,
        change.actor,
        request if request is not None else "-",
        exc.reason,
        extra={"target": change.audit_target, "slack_user": change.actor, "request": request},
    )


def _prepare_or_record(
    services: Services,
    change: Change,
    *,
    waited: bool = False,
    action: PendingAction | None = None,
) -> Prepared:
    """`prepare`, its refusal or failure audited (with the id of the request `action`).

    A right Slack could not confirm (RightUnverifiable) is a failure, not a
    refusal: nobody was found without it.
    """
    try:
        return prepare(services, change, waited=waited)
    except RightUnverifiable as exc:
        _unverifiable(services, change, exc, action=action)
        raise
    except (FlagRefused, AppError) as exc:
        _refused(services, change, str(exc))
        raise
    except FlagFailed as exc:
        _read_failed(services, change, exc)
        raise


def submit(services: Services, change: Change) -> str:
    """Check a change; make it, or ask for the clicks its environment needs."""
    prepared = _prepare_or_record(services, change)
    settings = prepared.target.settings
    confirmation, approvals_needed = _clicks_needed(prepared.target)
    if not confirmation and not approvals_needed:
        return _execute(services, prepared, approved_by=[])
    channel = settings.release_channel or change.channel
    if channel is None:
        reason = (
            f"{code(prepared.target.label)} needs a confirmation in Slack, but has no "
            "release_channel to ask in."
        )
        _refused(services, change, reason)
        raise FlagRefused(reason)
    summary = _summary_or_raise(services, prepared)
    action = approval_flows.ask(
        services,
        kind="flag",  # bot/flags/confirm.py
        target=change.audit_target,
        summary=summary,
        details=_details(prepared),
        payload=prepared.change.to_payload(),
        requested_by=change.actor,
        channel=channel,
        needs_confirmation=confirmation,
        required_approvals=approvals_needed,
    )
    return (
        f"{code(prepared.target.label)} is protected: request #{action.id} waits for "
        f"{approval_flows.waits_for(action)} in {deploy_render.channel_text(channel)}."
    )


def _clicks_needed(target: Target) -> tuple[bool, int]:
    """The clicks a change of `target`'s flags waits for: the requester's confirmation
    (protected), and how many approvals of others (`require_approval`)."""
    settings = target.settings
    return settings.protected, 1 if settings.require_approval else 0


# A request's summary: bot/approvals/service.py keeps 1,000 characters of it. Each value a
# change sets or replaces shows about VALUE_SHOWN characters there, around where it changes;
# its Now and After share DETAIL_SHOWN among the values that change (VALUE_SHOWN at least),
# so they leave room for the lines after them.
SUMMARY_MAX = 1000
VALUE_SHOWN = 100
DETAIL_SHOWN = 500


def _summary_or_raise(services: Services, prepared: Prepared) -> str:
    """What a request asks, led by what it changes and nothing else, so whoever clicks sees
    the change whatever the flag's other values hold (up to 1,024 characters each); each
    value is cut around where it changes. A change too large for a summary is refused
    (audited): a request never shows part of its change."""
    change = prepared.change
    summary = (
        f"{actor_text(change.actor)} asks to change flag {code(change.flag)} of "
        f"{code(prepared.target.label)}: "
        f"*{render.delta_text(prepared.before, prepared.after, width=VALUE_SHOWN)}*"
    )
    if len(summary) <= SUMMARY_MAX:
        return summary
    reason = (
        f"What this changes in {code(change.flag)} is more than a request for "
        f"{code(prepared.target.label)} can show whoever clicks. Nothing was asked: change "
        "fewer attributes at a time."
    )
    _refused(services, change, reason)
    raise FlagRefused(reason)


def _details(prepared: Prepared) -> list[str]:
    # Only what changes: the flag's other values would push it out of sight.
    changes = len(render.changed(prepared.before, prepared.after))
    width = max(VALUE_SHOWN, DETAIL_SHOWN // max(changes, 1))
    now, after = render.changed_states(prepared.before, prepared.after, width=width)
    lines = [f"*Now* {now}", f"*After* {after}"]
    base = prepared.change.deployed_version
    if base is not None:
        if prepared.never_deployed:
            lines.append(
                f"*AppConfig* nothing is deployed yet: a new version made from version {base}, "
                "then its first deployment (the whole document ships) with the environment's "
                "strategy"
            )
        else:
            lines.append(
                f"*AppConfig* a new version made from the deployed version {base}, then a "
                "deployment with the environment's strategy: only this flag changes"
            )
        if prepared.undeployed:
            lines.append(
                f"*Not shipped* Hosted {render.undeployed_text(prepared.undeployed)}. "
                "It is left out of this change."
            )
    else:
        lines.append("*SSM* the parameter is overwritten, then the service restarted")
    return lines


def execute(
    services: Services, change: Change, *, approved_by: list[str], action: PendingAction
) -> str:
    """Make `action`, a change whose clicks are in: every check again first.

    It runs only under the clicks it was asked under, or more (`_require_clicks_asked`).
    """
    prepared = _prepare_or_record(services, change, waited=True, action=action)
    _require_clicks_asked(services, prepared, action)
    return _execute(services, prepared, approved_by=approved_by)


def _require_clicks_asked(services: Services, prepared: Prepared, action: PendingAction) -> None:
    """Refuse a change asked under fewer clicks than its environment demands now.

    Its clicks are those the environment demanded when it was asked (stored on the
    pending action). One demanded since (`protected` or `require_approval` added
    while it waited, read by a restarted bot or by another instance of a rolling
    deploy) was never given, and nobody agreed to go without it. Audited refused.
    """
    confirmation, approvals_needed = _clicks_needed(prepared.target)
    added = approval_flows.added_clicks(
        action, needs_confirmation=confirmation, required_approvals=approvals_needed
    )
    if not added:
        return
    change = prepared.change
    log.warning(
        "flag change %r of %s by %s (request %s) refused: it now needs %s",
        change.what,
        change.label,
        change.actor,
        action.id,
        " and ".join(added),
        extra={
            "target": change.audit_target,
            "slack_user": change.actor,
            "request": action.id,
            "asked_under": {
                "needs_confirmation": action.needs_confirmation,
                "required_approvals": action.required_approvals,
            },
        },
    )
    reason = (
        f"{code(prepared.target.label)} now needs {' and '.join(added)}, which it did not when "
        "the request was made (it changed while the request waited); nothing was written. "
        "Ask again to change the flag with what it needs now."
    )
    _refused(services, change, reason)
    raise FlagRefused(reason)


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


def _appconfig_failed(
    services: Services,
    prepared: Prepared,
    *,
    approved_by: list[str],
    exc: FlagError,
    step: str,
    version: int | None = None,
    intent: int | None = None,
    **detail: Any,
) -> IntentOutcome | None:
    """Audit the change failed; with its `intent`, only while no outcome line names it.

    Another instance's `settle_intent` may have recorded it meanwhile (from
    AppConfig's deployments): that line is returned, and no second one written.
    """
    with services.sessions() as db_session:
        known = None if intent is None else _outcome(db_session, _locked(db_session, intent))
        if known is None:
            _audit_change(
                services,
                db_session,
                prepared,
                outcome="failed",
                approved_by=approved_by,
                reason=str(exc),
                version=version,
                previous_version=prepared.change.seen_version,
                deployed_version=prepared.change.deployed_version,
                **({"intent": intent} if intent is not None else {}),
                **detail,
            )
            _count(db_session, "failed")
        db_session.commit()
    _log_failure(prepared.change, step=step, exc=exc, version=version)
    if known is not None:
        log.warning(
            "flag change %r of %s by %s: its failure (%s) is not recorded: line %s, %s, "
            "already records its intent %s",
            prepared.change.what,
            prepared.change.label,
            prepared.change.actor,
            step,
            known.id,
            known.outcome,
            intent,
            extra={
                "target": prepared.change.audit_target,
                "slack_user": prepared.change.actor,
                "intent": intent,
            },
        )
    return known


def _stoppable_undone(
    services: Services, prepared: Prepared, flags: AppConfigFlags, running: appconfig.Rollout
) -> int | None:
    """The version StopDeployment of `running` rolls back to, when that is this undo.

    An undo of a change whose own AppConfig deployment still runs cannot deploy (one at a
    time), but stopping that deployment rolls the environment back to the version
    deployed before it: exactly the undo when the change was made from that version and
    the undo's document is that version's. None otherwise (the change is refused as any).
    """
    change = prepared.change
    if change.undoes is None or running.state == "ROLLING_BACK":
        return None  # a rollout rolling back already gives the version before it back
    with services.sessions() as db_session:
        undone = db_session.get(AuditRecord, change.undoes)
        detail = dict(undone.detail or {}) if undone is not None else {}
        ok = (
            undone is not None
            and undone.action == CHANGE
            and undone.target == change.audit_target
            and undone.outcome == "ok"
        )
    version, before = detail.get("version"), detail.get("deployed_version")
    if not (
        ok
        and detail.get("flag") == change.flag
        and detail.get("deployment") == running.number
        and isinstance(version, int)
        and isinstance(before, int)
        and version == change.deployed_version
        and running.version == str(version)
    ):
        return None
    client = services.aws.get("appconfig")
    if _held_before(client, flags, number=running.number) != before:
        return None  # AppConfig would roll back to another version, or to none
    previous = appconfig.read_version(client, flags, number=before)
    assert prepared.document is not None
    if differences(previous.document, prepared.document):
        return None  # rolling back would give more (or less) than this undo
    return before


def _held_before(client: Any, flags: AppConfigFlags, *, number: int) -> int | None:
    """The version of the profile's newest COMPLETE deployment before deployment `number`:
    what stopping `number` rolls the environment back to (None: it held none)."""
    with aws_call("list the environment's deployments"):
        items = client.list_deployments(
            ApplicationId=flags.application, EnvironmentId=flags.environment, MaxResults=50
        )["Items"]
    earlier = sorted(
        (i for i in items if int(i["DeploymentNumber"]) < number),
        key=lambda i: -int(i["DeploymentNumber"]),
    )
    for item in earlier:
        if item.get("State") != appconfig.COMPLETE:
            continue  # rolled back or reverted: it gave its place back to the one before it
        found = int(item["DeploymentNumber"])
        with aws_call(f"read AppConfig deployment {found}"):
            answer = client.get_deployment(
                ApplicationId=flags.application,
                EnvironmentId=flags.environment,
                DeploymentNumber=found,
            )
        if answer.get("ConfigurationProfileId") == flags.profile:  # one environment, many
            version = str(answer.get("ConfigurationVersion") or "")
            return int(version) if version.isdigit() else None
    return None


def _stop_undone_rollout(
    services: Services,
    prepared: Prepared,
    flags: AppConfigFlags,
    *,
    approved_by: list[str],
    running: appconfig.Rollout,
    back_to: int,
) -> str:
    """Undo a change by stopping its own deployment, still running: AppConfig rolls the
    environment back to `back_to`, the version before it. The change's watch records the
    end (rolled back) and says it in the release channel."""
    change = prepared.change
    label = prepared.target.label
    number = running.number
    channel = prepared.target.settings.release_channel or change.channel
    try:
        with aws_call(f"stop AppConfig deployment {number}"):
            # AllowRevert: without it AppConfig stops only a DEPLOYING rollout, not one in
            # its bake time (BAKING, shown as still rolling out), and refuses one that
            # completed meanwhile; with it either goes back to the version before it.
            services.aws.get("appconfig").stop_deployment(
                ApplicationId=flags.application,
                EnvironmentId=flags.environment,
                DeploymentNumber=number,
                AllowRevert=True,
            )
    except FlagFailed as exc:
        _appconfig_failed(
            services,
            prepared,
            approved_by=approved_by,
            exc=exc,
            step=f"stopping AppConfig deployment {number} (the change it undoes)",
            stopped_deployment=number,
        )
        raise
    with services.sessions() as db_session:
        _audit_change(
            services,
            db_session,
            prepared,
            outcome="ok",
            approved_by=approved_by,
            stopped_deployment=number,
            # The version deployed once AppConfig has rolled back: an undo of this is
            # pinned to it.
            version=back_to,
            previous_version=change.seen_version,
            deployed_version=change.deployed_version,
            app=change.app,
            env=change.env,
            channel=channel,
        )
        _count(db_session, "done")
        db_session.commit()
    log.info(
        "flag change %r of %s by %s: stopped AppConfig deployment %s (version %s, the change "
        "line %s undoes); AppConfig rolls back to version %s",
        change.what,
        label,
        change.actor,
        number,
        running.version,
        change.undoes,
        back_to,
        extra={
            "target": change.audit_target,
            "slack_user": change.actor,
            "deployment": number,
            "undoes": change.undoes,
        },
    )
    where = f": follow it in {deploy_render.channel_text(channel)}" if channel else ""
    return (
        f"Flag {code(change.flag)} of {code(label)} → {render.state_text(prepared.after)}: "
        f"stopped deployment {number}, which was rolling out the change this undoes: "
        f"AppConfig rolls back to version {back_to}, the one before it{where}."
    )


def _execute_appconfig(
    services: Services, prepared: Prepared, flags: AppConfigFlags, *, approved_by: list[str]
) -> str:
    change = prepared.change
    assert prepared.document is not None and change.seen_version is not None
    label = prepared.target.label
    client = services.aws.get("appconfig")
    try:
        running = appconfig.running_rollout(client, flags)
    except FlagFailed as exc:
        _read_failed(services, change, exc)
        raise
    if running is not None:
        try:
            back_to = _stoppable_undone(services, prepared, flags, running)
        except FlagFailed as exc:
            _read_failed(services, change, exc)
            raise
        if back_to is not None:
            return _stop_undone_rollout(
                services, prepared, flags, approved_by=approved_by, running=running, back_to=back_to
            )
        reason = (
            f"AppConfig deployment {running.number} of {code(label)} is still "
            f"{escape(running.state)} ({running.percent:g}%); AppConfig allows one at a time. "
            "Nothing was written: try again when it is done."
        )
        _refused(services, change, reason)
        raise FlagRefused(reason)
    who = f"opsbot for {change.actor}" + (
        f" (approved by {', '.join(approved_by)})" if approved_by else ""
    )
    description = f"{who}: {change.what}"
    if prepared.undeployed:
        description += (
            f" (made from the deployed version {change.deployed_version}; version "
            f"{prepared.undeployed['version']} is not deployed)"
        )
    try:
        version = appconfig.write_version(
            client,
            flags,
            document=prepared.document,
            latest=change.seen_version,
            description=description,
        )
    except FlagConflict as exc:  # another version came first, or this write's own retry
        own = _own_version(services, prepared, flags, exc=exc, description=description)
        if own is None:
            _refused(services, change, str(exc))
            raise
        lost = FlagFailed(
            f"Flag {code(change.flag)} of {code(label)}: version {own} was written, but AWS's "
            f"answer to the write was lost (its retry got {code(_aws_code(exc))}), so it was "
            f"not deployed. {_not_deployed_text(prepared, own)}"
        )
        lost.__cause__ = exc  # its AWS error, in the log line before it is raised
        _appconfig_failed(
            services,
            prepared,
            approved_by=approved_by,
            exc=lost,
            step="writing the version (written, its answer lost; not deployed)",
            version=own,
        )
        raise lost from exc
    except FlagRefused as exc:  # AppConfig's validator said no
        _refused(services, change, str(exc))
        raise
    except FlagError as exc:
        _appconfig_failed(
            services, prepared, approved_by=approved_by, exc=exc, step="writing the version"
        )
        raise
    channel = prepared.target.settings.release_channel or change.channel
    recorded: dict[str, Any] = {
        "version": version,
        "previous_version": change.seen_version,
        "deployed_version": change.deployed_version,
        "undeployed": prepared.undeployed,
        # What a lost watch is resumed from (bot/flags/jobs.py, resume_watches).
        "app": change.app,
        "env": change.env,
        "channel": channel,
        "key": f"flag-change:{change.app}/{change.env}:v{version}:{uuid.uuid4().hex[:8]}",
    }
    intent = _record_intent(services, prepared, approved_by=approved_by, recorded=recorded)
    unanswered: str | None = None  # StartDeployment's AWS error when its answer was lost
    try:
        number = appconfig.start_rollout(client, flags, version=version, description=description)
    except FlagError as exc:
        number = _started_anyway_or_raise(
            services,
            prepared,
            flags,
            approved_by=approved_by,
            version=version,
            intent=intent,
            exc=exc,
        )
        unanswered = _aws_code(exc)
    now = services.clock.now()
    info = _watch_info(
        app=change.app,
        env=change.env,
        label=label,
        flag=change.flag,
        before=prepared.before,
        after=prepared.after,
        actor=change.actor,
        approved_by=approved_by,
        version=version,
        deployment=number,
        channel=channel,
        key=str(recorded["key"]),
    )
    corrected: int | None = None  # the line that recorded this change as never started
    try:
        with services.sessions() as db_session:
            known = _outcome(db_session, _locked(db_session, intent))
            # Another instance's settle_intent records a change it finds no deployment
            # of as never started; the deployment this process holds says otherwise.
            if known is None or known.not_started:
                corrected = None if known is None else known.id
                _audit_change(
                    services,
                    db_session,
                    prepared,
                    outcome="ok",
                    approved_by=approved_by,
                    deployment=number,
                    intent=intent,
                    **recorded,
                    **({"start_unanswered": unanswered} if unanswered else {}),
                    **({"corrects": corrected} if corrected is not None else {}),
                )
                if corrected is not None:  # its message that nothing changed is replaced
                    _tell(
                        db_session,
                        actor=change.actor,
                        key=f"{recorded['key']}:settled",
                        text=(
                            f"Flag {code(change.flag)} of {code(label)}: AppConfig deployment "
                            f"{number} of version {version} started after all: recorded, and "
                            "watched."
                        ),
                        now=now,
                    )
                if channel:
                    outbox.post_or_update(
                        db_session,
                        key=str(info["key"]),
                        channel=channel,
                        message=render.change_announcement(info, state="DEPLOYING"),
                        now=now,
                    )
                # Scheduled once this commits; a job store that fails then is logged, and
                # the watch is resumed at the next start from this audit line.
                schedule_after_commit(
                    db_session,
                    WATCH_JOB,
                    at=now + timedelta(seconds=services.config.deploys.poll_interval_s),
                    job_id=watch_job_id(info),
                    info=info,
                    last="",
                )
            db_session.commit()
    except SQLAlchemyError as exc:
        _record_started_again_or_raise(services, prepared, intent=intent, number=number, exc=exc)
    if corrected is not None:
        log.warning(
            "flag change %r of %s by %s: AppConfig deployment %s of version %s was recorded as "
            "not started (line %s) while StartDeployment was at work; recorded started",
            change.what,
            label,
            change.actor,
            number,
            version,
            corrected,
            extra={"target": change.audit_target, "slack_user": change.actor, "intent": intent},
        )
    where = f": follow it in {deploy_render.channel_text(channel)}" if channel else ""
    left_out = (
        f" Hosted {render.undeployed_text(prepared.undeployed)}: it is left out of this change."
        if prepared.undeployed
        else ""
    )
    found = (
        " AWS's answer to StartDeployment was lost; opsbot found the deployment it started."
        if unanswered
        else ""
    )
    if corrected is not None:
        found += " (opsbot had recorded it as not started while AWS was answering: corrected.)"
    return (
        f"Flag {code(change.flag)} of {code(label)} → "
        f"{render.state_text(prepared.after)}: version {version} written, AppConfig "
        f"deployment {number} started{where}.{found}{left_out}"
    )


def _record_intent(
    services: Services, prepared: Prepared, *, approved_by: list[str], recorded: dict[str, Any]
) -> int:
    """Commit the change's intent before StartDeployment: its `flag.start` line's id.

    A deployment AppConfig starts runs whatever happens to this process next; the
    intent is what a later start settles it from (`settle_intents`) when the
    change's own outcome line never commits.
    """
    change = prepared.change
    try:
        with services.sessions() as db_session:
            entry = audit.record(
                db_session,
                at=services.clock.now(),
                actor=change.actor,
                action=START,
                target=change.audit_target,
                outcome=STARTING,
                detail={
                    "flag": change.flag,
                    "asked": change.what,
                    "before": prepared.before,
                    "after": prepared.after,
                    "approved_by": approved_by,
                    **recorded,
                },
            )
            db_session.commit()
            return int(entry.id)
    except SQLAlchemyError as exc:
        version = int(recorded["version"])
        _log_failure(
            change,
            step="recording its start (version written, not deployed)",
            exc=exc,
            version=version,
        )
        raise FlagFailed(
            f"Flag {code(change.flag)} of {code(prepared.target.label)}: version {version} "
            "written, not deployed: opsbot could not record the change in its database, so it "
            f"did not start deploying it. {_not_deployed_text(prepared, version)}"
        ) from exc


def _record_started_again_or_raise(
    services: Services, prepared: Prepared, *, intent: int, number: int, exc: SQLAlchemyError
) -> None:
    """The outcome of a started deployment did not commit: settle its intent now, once.

    A dropped connection fails one transaction and the next gets a new one; a
    database that stays away leaves the intent to the next start (`settle_intents`).
    """
    change = prepared.change
    log.warning(
        "flag change %r of %s by %s: AppConfig deployment %s started, its record failed (%s); "
        "settling its intent %s again",
        change.what,
        change.label,
        change.actor,
        number,
        type(exc).__name__,
        intent,
        extra={"target": change.audit_target, "slack_user": change.actor, "intent": intent},
    )
    try:
        settled = settle_intent(
            services, intent_id=intent, interrupted="opsbot's database failed", tell=False
        )
    except (AppError, FlagError, SQLAlchemyError) as again:
        settled = type(again).__name__
    if settled in ("started", None):  # recorded now, or already
        return
    log.error(
        "flag change %r of %s by %s: AppConfig deployment %s started and not recorded "
        "(%s); its intent %s is settled at the next start",
        change.what,
        change.label,
        change.actor,
        number,
        settled,
        intent,
        extra={"target": change.audit_target, "slack_user": change.actor, "intent": intent},
    )
    raise FlagFailed(
        f"Flag {code(change.flag)} of {code(prepared.target.label)}: AppConfig deployment "
        f"{number} started, but opsbot could not record it (its database failed): it is not "
        "watched or announced yet. opsbot records and watches it when it next starts; follow it "
        "in AppConfig meanwhile, and check `/flag list` before asking again."
    ) from exc


def _not_deployed_text(prepared: Prepared, version: int) -> str:
    """What the environment holds when this change's `version` was written and not deployed."""
    change, label = prepared.change, prepared.target.label
    if prepared.never_deployed:
        return (
            f"Nothing is deployed to {code(label)} yet: deploy version {version} (this "
            f"change) or version {change.deployed_version} in AppConfig first."
        )
    return (
        f"Nothing changed in {code(label)}: it still holds version "
        f"{change.deployed_version}. Ask again to make the change: it is made from "
        f"the deployed version, and version {version} stays out of it."
    )


def _own_version(
    services: Services,
    prepared: Prepared,
    flags: AppConfigFlags,
    *,
    exc: FlagConflict,
    description: str,
) -> int | None:
    """The version this change wrote, when its write's answer was lost and a retry conflicted.

    A conflict on the only try is someone else's version: nothing of this change
    landed. After retries, the first try may have written it; the newest version
    says whether (see `appconfig.own_version`). Unreadable: taken as someone else's,
    which the answer's `/flag list` shows.
    """
    if exc.__cause__ is None or not may_have_been_done(exc.__cause__):
        return None
    assert prepared.document is not None and prepared.change.seen_version is not None
    try:
        return appconfig.own_version(
            services.aws.get("appconfig"),
            flags,
            latest=prepared.change.seen_version,
            document=prepared.document,
            description=description,
        )
    except FlagError as look:
        _log_failure(prepared.change, step="reading the version its lost write made", exc=look)
        return None


def _started_anyway_or_raise(
    services: Services,
    prepared: Prepared,
    flags: AppConfigFlags,
    *,
    approved_by: list[str],
    version: int,
    intent: int,
    exc: FlagError,
) -> int:
    """StartDeployment failed: the deployment it started anyway, else the failure, audited.

    A lost answer (a timeout, a 5xx, any error after retries) may hide a deployment
    AppConfig started, and a ConflictException is what a retry of a start that
    landed gets (the deployment in progress is its own): the environment's
    deployments say which. When they cannot be read, it may have started.
    """
    change, label = prepared.change, prepared.target.label
    cause = exc.__cause__
    if cause is not None and (may_have_been_done(cause) or _aws_code(exc) == "ConflictException"):
        try:
            found = appconfig.rollout_of_version(
                services.aws.get("appconfig"), flags, version=version
            )
        except FlagError as look:
            unknown = FlagFailed(
                f"Flag {code(change.flag)} of {code(label)}: version {version} written; AWS did "
                f"not answer StartDeployment ({exc}), and opsbot could not read the "
                f"environment's deployments ({look}). AppConfig may have started deploying "
                f"version {version}: check `/flag list` before asking again."
            )
            unknown.__cause__ = exc  # its AWS error, in the log line before it is raised
            known = _appconfig_failed(
                services,
                prepared,
                approved_by=approved_by,
                exc=unknown,
                step="starting the deployment (its answer lost: it may have started)",
                version=version,
                may_have_started=True,
                intent=intent,
            )
            if known is not None:
                return _as_recorded(prepared, known, version=version, exc=exc)
            raise unknown from exc
        if found is not None:
            log.warning(
                "flag change %r of %s by %s: StartDeployment of version %s unanswered (AWS "
                "error %s); AppConfig deployment %s of it is found and followed",
                change.what,
                label,
                change.actor,
                version,
                _aws_code(exc),
                found,
                extra={"target": change.audit_target, "slack_user": change.actor},
            )
            return found
    known = _appconfig_failed(
        services,
        prepared,
        approved_by=approved_by,
        exc=exc,
        step="starting the deployment (version written, not deployed)",
        version=version,
        intent=intent,
    )
    if known is not None:
        return _as_recorded(prepared, known, version=version, exc=exc)
    raise FlagFailed(
        f"Flag {code(change.flag)} of {code(label)}: version {version} written, not "
        f"deployed ({exc}). {_not_deployed_text(prepared, version)}"
    ) from exc


def _as_recorded(prepared: Prepared, known: IntentOutcome, *, version: int, exc: FlagError) -> int:
    """The change's outcome another instance recorded from AppConfig's deployments,
    while this process's StartDeployment failed: its deployment, else that failure.
    """
    change, label = prepared.change, prepared.target.label
    if known.outcome == "ok" and known.deployment is not None:
        log.warning(
            "flag change %r of %s by %s: StartDeployment of version %s failed here (%s); "
            "AppConfig deployment %s of it is already recorded (line %s) and followed",
            change.what,
            label,
            change.actor,
            version,
            _aws_code(exc),
            known.deployment,
            known.id,
            extra={"target": change.audit_target, "slack_user": change.actor},
        )
        return known.deployment
    if known.not_started:
        said = (
            f"AppConfig lists no deployment of it, and opsbot recorded the change as not "
            f"started. {_not_deployed_text(prepared, version)}"
        )
    else:
        said = (
            f"opsbot recorded the change as {escape(known.outcome)}: {known.detail.get('reason')}"
        )
    raise FlagFailed(
        f"Flag {code(change.flag)} of {code(label)}: version {version} written; "
        f"StartDeployment failed ({exc}). {said}"
    ) from exc


def _watch_info(
    *,
    app: str,
    env: str,
    label: str,
    flag: str,
    before: dict[str, Any],
    after: dict[str, Any],
    actor: str,
    approved_by: list[str],
    version: int,
    deployment: int,
    channel: str | None,
    key: str,
) -> dict[str, Any]:
    """What the `flags.watch` job carries: all its messages need, no table kept."""
    return {
        "app": app,
        "env": env,
        "label": label,
        "flag": flag,
        "before": render.state_text(before),
        "after": render.state_text(after),
        "actor": actor,
        "approved_by": approved_by,
        "version": version,
        "deployment": deployment,
        "channel": channel,
        "key": key,
    }


def _execute_ssm(
    services: Services, prepared: Prepared, flags: SsmFlags, *, approved_by: list[str]
) -> str:
    change = prepared.change
    enabled = prepared.after["value"] == "true"
    written: dict[str, Any] = {}

    def write() -> None:
        try:
            written["version"] = ssm.write(
                services.aws.get("ssm"),
                service_name=flags.service_name,
                flag=change.flag,
                enabled=enabled,
            )
        except FlagFailed as exc:
            if exc.__cause__ is None or not may_have_been_done(exc.__cause__):
                raise  # refused: nothing was written
            written["version"] = _landed_or_raise(services, prepared, flags, exc=exc)
            written["unanswered"] = _aws_code(exc)

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
        unknown = isinstance(exc, FlagWriteUnknown)
        refused = "version" not in written and not unknown
        with services.sessions() as db_session:
            _audit_change(
                services,
                db_session,
                prepared,
                outcome="refused" if refused else "failed",
                approved_by=approved_by,
                reason=str(exc),
                parameter_version=written.get("version"),
                **({"may_have_written": True} if unknown else {}),
            )
            _count(db_session, "refused" if refused else "failed")
            db_session.commit()
        if refused:
            raise FlagRefused(f"Nothing was written: {exc}") from exc
        _log_failure(
            change,
            step=(
                "writing the parameter (its answer lost: it may have been written)"
                if unknown
                else "restarting the service (parameter written)"
            ),
            exc=exc,
            version=written.get("version"),
        )
        if unknown:
            raise FlagFailed(str(exc)) from exc
        raise FlagFailed(
            f"{code(change.flag)} of {code(prepared.target.label)} is now "
            f"*{escape(prepared.after['value'])}* in SSM (parameter version "
            f"{written.get('version')}): the value is stored, and every task ECS starts from now "
            f"on reads it. But the service was not restarted ({exc}): the tasks running now keep "
            "the old value until they are replaced."
        ) from exc
    with services.sessions() as db_session:
        _audit_change(
            services,
            db_session,
            prepared,
            outcome="ok",
            approved_by=approved_by,
            parameter_version=written.get("version"),
            deployment=deployment.id,
            **({"write_unanswered": written["unanswered"]} if "unanswered" in written else {}),
        )
        _count(db_session, "done")
        db_session.commit()
    where = f": follow it in {deploy_render.channel_text(channel)}" if channel else ""
    found = (
        " AWS's answer to the write was lost; the parameter holds the value."
        if "unanswered" in written
        else ""
    )
    return (
        f"{code(change.flag)} of {code(prepared.target.label)} is now "
        f"*{escape(prepared.after['value'])}* "
        f"(parameter version {written.get('version')}); restarting the service so its tasks "
        f"read it (deployment #{deployment.id}){where}.{found}"
    )


def _landed_or_raise(
    services: Services, prepared: Prepared, flags: SsmFlags, *, exc: FlagFailed
) -> int:
    """The parameter's version when a write whose answer was lost holds; else FlagWriteUnknown.

    As after a crash (`_inspect_ssm_roll`): the change was asked only for a value
    the parameter did not hold, so holding it now means it was written. Not
    holding it, or unreadable, tells nothing certain: a try may still land.
    """
    change, asked = prepared.change, str(prepared.after["value"])
    name = code(ssm.prefix(flags.service_name) + change.flag)
    try:
        found = ssm.read(services.aws.get("ssm"), service_name=flags.service_name, flag=change.flag)
    except FlagError as look:
        raise FlagWriteUnknown(
            f"AWS did not answer the write of {name} ({exc}), and it could not be read back "
            f"({look}): it may have been written. Check it with `/flag list` before asking "
            "again; the service was not restarted."
        ) from exc
    if found.value != asked:
        raise FlagWriteUnknown(
            f"AWS did not answer the write of {name} ({exc}); it reads "
            f"*{escape(found.value)}* now, but a try may still land: it may have been "
            "written. Check it with `/flag list` before asking again; the service was not "
            "restarted."
        ) from exc
    log.warning(
        "flag change %r of %s by %s: PutParameter unanswered (AWS error %s); the parameter "
        "holds it (version %s), restarting",
        change.what,
        change.label,
        change.actor,
        _aws_code(exc),
        found.version,
        extra={"target": change.audit_target, "slack_user": change.actor},
    )
    return found.version


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
    """The `flag.change` line the crash kept the roll's caller from writing.

    Dated when the roll began (the parameter is written right after), not when it
    is settled: an incident lists the changes made before its alarm by that time.
    """
    record, seen = settled.change, settled.seen
    done = seen.written and settled.restarted
    audit.record(
        db_session,
        at=settled.deployment.created_at,
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
    _count(db_session, "done" if done else "failed")
    if not done:
        log.warning(
            "flag roll %r of %s by %s, interrupted, failed: deployment %s, %s",
            record["asked"],
            record["label"],
            record["actor"],
            settled.deployment.id,
            settled.outcome,
            extra={"target": f"flag:{record['label']}", "slack_user": record["actor"]},
        )


register_change_kind(
    ChangeKind(name=SSM_ROLL, inspect=_inspect_ssm_roll, settled=_settled_ssm_roll)
)


# -- watching an AppConfig deployment ------------------------------------------------------


def watch_job_id(info: dict[str, Any], *, suffix: str | None = None) -> str:
    """`flag-watch-<app>/<env>-<deployment>-<suffix>`: a new suffix for each look.

    A look that fails is retried under its own id; with its own suffix, the
    retry and the next look it may already have scheduled stay two jobs.
    `watched_deployments` reads the app environment and deployment back from it.
    """
    tail = suffix or uuid.uuid4().hex[:10]
    return f"{WATCH_JOB_PREFIX}{info['label']}-{info['deployment']}-{tail}"


def watched_deployments(job_ids: list[str]) -> set[tuple[str | None, int]]:
    """(label, deployment) of each pending watch job; label None for an id without it."""
    found: set[tuple[str | None, int]] = set()
    for job_id in job_ids:
        if not job_id.startswith(WATCH_JOB_PREFIX):
            continue
        head = job_id[len(WATCH_JOB_PREFIX) :].rpartition("-")[0]  # without the suffix
        label, _, number = head.rpartition("-")
        if number.isdigit():
            found.add((label or None, int(number)))
    return found


def schedule_watch(
    services: Services, *, info: dict[str, Any], last: str, job_id: str | None = None
) -> None:
    delay = timedelta(seconds=services.config.deploys.poll_interval_s)
    services.scheduler.schedule(
        WATCH_JOB,
        at=services.clock.now() + delay,
        job_id=job_id or watch_job_id(info),
        info=info,
        last=last,
    )


RESUME_WINDOW = timedelta(days=7)  # AppConfig strategies last up to a day, bake included


def unwatched_deployments(services: Services) -> list[dict[str, Any]]:
    """The watch info of each recent AppConfig change whose deployment's end is not recorded.

    From the audit: `flag.change` ok lines with a deployment (AppConfig; SSM
    lines carry a parameter version) and no `flag.deployment` line for it.
    """
    since = services.clock.now() - RESUME_WINDOW
    with services.sessions() as db_session:
        query = (
            select(AuditRecord)
            .where(
                AuditRecord.at >= since,
                AuditRecord.target.like("flag:%"),
                or_(
                    (AuditRecord.action == CHANGE) & (AuditRecord.outcome == "ok"),
                    AuditRecord.action == DEPLOYMENT,
                ),
            )
            .order_by(AuditRecord.id.desc())
            .limit(2000)
        )
        rows = list(db_session.scalars(query))
        db_session.expunge_all()
    ended = {(r.target, (r.detail or {}).get("deployment")) for r in rows if r.action == DEPLOYMENT}
    found: list[dict[str, Any]] = []
    for row in reversed(rows):
        detail = row.detail or {}
        if row.action != CHANGE or "version" not in detail or detail.get("deployment") is None:
            continue
        if (row.target, detail["deployment"]) in ended:
            continue
        found.append(_resumed_info(services, row.target.removeprefix("flag:"), row.actor, detail))
    return found


def _locked(db_session: Session, intent_id: int) -> AuditRecord:
    """The intent's line, locked: one settles it at a time (the change, or a start)."""
    entry = db_session.get(AuditRecord, intent_id, with_for_update=True)
    assert entry is not None and entry.action == START
    return entry


@dataclass(frozen=True)
class IntentOutcome:
    """The newest `flag.change` line naming an intent: its change's recorded outcome."""

    id: int
    outcome: str
    detail: dict[str, Any]

    @property
    def not_started(self) -> bool:
        """Audited as never started: a deployment of its version found later corrects it."""
        return bool(self.detail.get("not_started"))

    @property
    def deployment(self) -> int | None:
        number = self.detail.get("deployment")
        return None if number is None else int(number)


def _outcome(db_session: Session, intent: AuditRecord) -> IntentOutcome | None:
    """The newest `flag.change` line naming this intent; None while no outcome is recorded."""
    query = (
        select(AuditRecord)
        .where(
            AuditRecord.action == CHANGE,
            AuditRecord.target == intent.target,
            AuditRecord.id > intent.id,
            AuditRecord.detail["intent"].as_integer() == intent.id,
        )
        .order_by(AuditRecord.id.desc())
        .limit(1)
    )
    line = db_session.scalars(query).first()
    if line is None:
        return None
    return IntentOutcome(id=line.id, outcome=line.outcome, detail=dict(line.detail or {}))


def _start_patience(services: Services) -> timedelta:
    """How long after its intent a change may still be at work, before its outcome line.

    StartDeployment with its retries, then the look that finds its deployment when
    its answer is lost, may outlast the start grace: until they are over, no
    deployment listed only says that none is listed yet.
    """
    longest_s = START_CALLS * longest_call_s("appconfig")
    return timedelta(seconds=max(services.config.deploys.starting_grace_s, longest_s))


def settle_intents(services: Services) -> int:
    """At start: a `flags.settle` job for each AppConfig change whose intent no outcome
    line names; how many.

    Each runs once `deploys.starting_grace_s` has passed since its intent: a younger
    one may be the change of a process at work right now, between its intent and
    StartDeployment. Jobs keep AWS's answers off the start-up path. The newest
    SETTLE_BATCH are taken: older ones are left to a later start.
    """
    now = services.clock.now()
    grace = timedelta(seconds=services.config.deploys.starting_grace_s)
    outcome = aliased(AuditRecord)
    named = exists().where(
        outcome.action == CHANGE,
        outcome.target == AuditRecord.target,
        outcome.id > AuditRecord.id,
        outcome.detail["intent"].as_integer() == AuditRecord.id,
    )
    with services.sessions() as db_session:
        query = (
            select(AuditRecord.id, AuditRecord.at)
            .where(
                AuditRecord.action == START,
                AuditRecord.outcome == STARTING,
                AuditRecord.at >= now - RESUME_WINDOW,
                ~named,
            )
            .order_by(AuditRecord.id.desc())
            .limit(SETTLE_BATCH)
        )
        found = [(int(intent_id), at) for intent_id, at in db_session.execute(query)]
    if len(found) == SETTLE_BATCH:
        log.warning(
            "%d AppConfig flag changes or more are unrecorded: the newest are settled now, "
            "the older at a later start",
            SETTLE_BATCH,
        )
    for intent_id, at in found:
        # One id for every instance starting at once: the job is stored once.
        services.scheduler.schedule(
            SETTLE_JOB,
            at=max(now, at + grace),
            job_id=f"flag-settle-{intent_id}",
            intent_id=intent_id,
        )
    return len(found)


def settle_intent(
    services: Services, *, intent_id: int, interrupted: str = "the bot stopped", tell: bool = True
) -> str | None:
    """Settle an AppConfig change its own outcome line missed, from AppConfig's deployments.

    Started: recorded, announced and watched as the change would have been, and
    the person who asked is told (`tell`: their answer was lost with the process);
    a change audited as never started whose deployment AppConfig lists now is
    recorded so. Never started: audited failed, and they are told that nothing
    changed; only once `_start_patience` is over since the intent, as before it a
    deployment not listed may be one the change's StartDeployment still starts.
    Returns "started", "not_started", WAITING (too early to tell: try again later),
    or None when its outcome is already recorded. Raises FlagError when AppConfig
    cannot be read (nothing is recorded: a later try settles it), FlagRefused when
    the environment no longer keeps its flags in AppConfig, AppError when it left
    the configuration.
    """
    with services.sessions() as db_session:
        intent = db_session.get(AuditRecord, intent_id)
        if intent is None or intent.action != START:
            return None
        known = _outcome(db_session, intent)
        if known is not None and not known.not_started:
            return None
        if intent.at < services.clock.now() - RESUME_WINDOW:
            if known is None:
                log.error(
                    "flag change of intent %s from %s was never settled; given up",
                    intent_id,
                    intent.at.isoformat(),
                    extra={
                        "target": intent.target,
                        "slack_user": intent.actor,
                        "intent": intent_id,
                    },
                )
            return None
        label, actor, intent_at = intent.target.removeprefix("flag:"), intent.actor, intent.at
        recorded = dict(intent.detail or {})
    app, env = str(recorded["app"]), str(recorded["env"])
    flags = flags_or_raise(get_target_or_raise(services.config, app=app, env=env))
    if not isinstance(flags, AppConfigFlags):
        raise FlagRefused(f"{code(label)} no longer keeps its flags in AppConfig")
    version = int(recorded["version"])
    number = appconfig.rollout_of_version(services.aws.get("appconfig"), flags, version=version)
    now = services.clock.now()
    if number is None and known is not None:
        return None  # audited as never started, and AppConfig still lists none
    if number is None and now < intent_at + _start_patience(services):
        log.info(
            "flag change of intent %s: no AppConfig deployment of version %s of %s listed yet; "
            "its change may still be starting it",
            intent_id,
            version,
            label,
            extra={"target": f"flag:{label}", "slack_user": actor, "intent": intent_id},
        )
        return WAITING
    base = {k: recorded.get(k) for k in ("flag", "asked", "before", "after", "approved_by")}
    with services.sessions() as db_session:

        def settled(*, outcome: str, **detail: Any) -> None:
            """The intent's one outcome line, as its own change would have written it.

            Dated at the intent, made right before StartDeployment, not when it is
            settled: an incident lists the changes made before its alarm by that time.
            """
            audit.record(
                db_session,
                at=intent_at,
                actor=actor,
                action=CHANGE,
                target=f"flag:{label}",
                outcome=outcome,
                detail={**base, **recorded, "intent": intent_id, **detail},
            )

        known = _outcome(db_session, _locked(db_session, intent_id))
        if known is not None and (number is None or not known.not_started):
            return None
        if number is None:
            text = (
                f"Flag {code(recorded.get('flag'))} of {code(label)}: version {version} was "
                f"written, but {interrupted} before AppConfig started deploying it. Nothing "
                f"changed in {code(label)}: ask again (version {version} stays out of it)."
            )
            settled(outcome="failed", deployment=None, not_started=True, reason=text)
            _count(db_session, "failed")
            if tell:
                _tell(db_session, actor=actor, key=f"{recorded['key']}:settled", text=text, now=now)
            db_session.commit()
            log.warning(
                "flag change %r of %s by %s: interrupted (%s) before StartDeployment of version "
                "%s; settled as not started",
                recorded.get("asked"),
                label,
                actor,
                interrupted,
                version,
                extra={"target": f"flag:{label}", "slack_user": actor, "intent": intent_id},
            )
            return "not_started"
        info = _resumed_info(services, label, actor, {**recorded, "deployment": number})
        corrects = {"corrects": known.id} if known is not None else {}
        settled(outcome="ok", deployment=number, settled=True, **corrects)
        text = (
            f"Flag {code(info['flag'])} of {code(label)}: AppConfig deployment {number} of "
            f"version {version} started, but {interrupted} before recording it; recorded now, "
            "and watched."
        )
        if known is not None:
            text += " (It was first recorded as not started: AppConfig lists it now.)"
        _announce(db_session, info, state="DEPLOYING", text=text, now=now)
        if tell or known is not None:  # a not-started message of its own is corrected
            _tell(db_session, actor=actor, key=f"{info['key']}:settled", text=text, now=now)
        refresh_incidents(db_session, app=app, env=env, now=now)
        db_session.commit()
    log.warning(
        "flag change %r of %s by %s: AppConfig deployment %s of version %s started, not "
        "recorded (%s); settled from AppConfig, watching it",
        recorded.get("asked"),
        label,
        actor,
        number,
        version,
        interrupted,
        extra={
            "target": f"flag:{label}",
            "slack_user": actor,
            "intent": intent_id,
            "corrects": None if known is None else known.id,
        },
    )
    try:
        # One id for every instance settling it: the job is stored once.
        schedule_watch(services, info=info, last="", job_id=watch_job_id(info, suffix="resumed"))
    except Exception:  # its ok line is recorded: the next start resumes the watch from it
        log.exception("cannot schedule the watch of AppConfig deployment %s of %s", number, label)
    return "started"


def _tell(db_session: Session, *, actor: str, key: str, text: str, now: datetime) -> None:
    """The person who asked, whose answer was lost with the process (a Slack user only)."""
    if is_slack_user(actor):
        outbox.post_or_update(
            db_session,
            key=key,
            channel=actor,
            message={"text": text, "blocks": None},
            now=now,
        )


def _resumed_info(
    services: Services, label: str, actor: str, detail: dict[str, Any]
) -> dict[str, Any]:
    app = str(detail.get("app") or label.rpartition("/")[0])
    env = str(detail.get("env") or label.rpartition("/")[2])
    number = int(detail["deployment"])
    channel = detail.get("channel")
    if "channel" not in detail:  # a line written before channel and key were kept
        try:
            channel = get_target_or_raise(
                services.config, app=app, env=env
            ).settings.release_channel
        except AppError:
            channel = None
    return _watch_info(
        app=app,
        env=env,
        label=label,
        flag=str(detail.get("flag")),
        before=dict(detail.get("before") or {}),
        after=dict(detail.get("after") or {}),
        actor=actor,
        approved_by=list(detail.get("approved_by") or []),
        version=int(detail["version"]),
        deployment=number,
        channel=None if channel is None else str(channel),
        key=str(detail.get("key") or f"flag-change:{label}:{number}:resumed"),
    )


def _end_recorded(db_session: Session, *, label: str, number: int) -> bool:
    """Whether a `flag.deployment` line already ends this deployment (two watches of one)."""
    query = (
        select(AuditRecord.detail)
        .where(AuditRecord.action == DEPLOYMENT, AuditRecord.target == f"flag:{label}")
        .order_by(AuditRecord.id.desc())
        .limit(200)
    )
    return any((detail or {}).get("deployment") == number for detail in db_session.scalars(query))


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
        if info.get(UNREADABLE_TOLD) and rollout.running and channel:
            # Said UNREADABLE: readable again, it says its state once more.
            outbox.post_or_update(
                db_session,
                key=info["key"],
                channel=channel,
                message=render.change_announcement(info, state=rollout.state),
                now=now,
            )
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
        if _end_recorded(db_session, label=str(info["label"]), number=rollout.number):
            return None  # another watch of it (resumed at a start) got there first
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
        if outcome != "ok":
            log.warning(
                "flag change %r of %s by %s: AppConfig deployment %s of version %s ended %s%s",
                f"{info['flag']} {info['after']}",
                info["label"],
                info.get("actor"),
                rollout.number,
                info["version"],
                rollout.state,
                f" ({rollout.events[0]})" if rollout.events else "",
                extra={"target": f"flag:{info['label']}", "slack_user": info.get("actor")},
            )
        _count(db_session, "done" if outcome == "ok" else outcome)
        audit.record(
            db_session,
            at=now,
            actor="opsbot",
            action=DEPLOYMENT,
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
        _announce(db_session, info, state=rollout.state, text=text, now=now)
        db_session.commit()
    return None


def _announce(
    db_session: Session, info: dict[str, Any], *, state: str, text: str, now: datetime
) -> None:
    """The change's announcement shows `state`, and its thread says `text` (when it was
    announced in a channel)."""
    channel = info.get("channel")
    if not channel:
        return
    key = str(info["key"])
    message = render.change_announcement(info, state=state)
    outbox.post_or_update(db_session, key=key, channel=channel, message=message, now=now)
    outbox.reply_in_thread(
        db_session,
        key=key,
        channel=channel,
        fold_key=None,
        item={"text": text},
        render=deploy_render.text_reply,
        now=now,
    )


UNREADABLE_SINCE = "unreadable_since"  # watch info: the first look that could not read it
UNREADABLE_TOLD = "unreadable_told"  # watch info: the channel was told


def readable_again(info: dict[str, Any]) -> dict[str, Any]:
    """The watch info once a look read the deployment: no longer unreadable."""
    return {k: v for k, v in info.items() if k not in (UNREADABLE_SINCE, UNREADABLE_TOLD)}


def unreadable(services: Services, *, info: dict[str, Any], error: FlagError) -> dict[str, Any]:
    """A look could not read the deployment; the watch info for the next look.

    After `deploys.stuck_after_min` of that (as a deploy watch that cannot read
    ECS), nobody can tell how the rollout goes: the channel is told once, in the
    change's thread, and the watch goes on; a look that reads it again takes over.
    """
    now = services.clock.now()
    since_text = info.get(UNREADABLE_SINCE)
    since = datetime.fromisoformat(since_text) if isinstance(since_text, str) else now
    info = {**info, UNREADABLE_SINCE: since.isoformat()}
    stuck_after = timedelta(minutes=services.config.deploys.stuck_after_min)
    if info.get(UNREADABLE_TOLD) or now - since < stuck_after:
        return info
    aws_error = _aws_code(error)
    log.error(
        "cannot read AppConfig deployment %s of %s (version %s, flag change %r by %s) since %s: "
        "AWS error %s",
        info.get("deployment"),
        info.get("label"),
        info.get("version"),
        f"{info.get('flag')} {info.get('after')}",
        info.get("actor"),
        since.isoformat(),
        aws_error,
        extra={"target": f"flag:{info.get('label')}", "slack_user": info.get("actor")},
    )
    text = (
        f":warning: opsbot cannot read AppConfig deployment {info.get('deployment')} since "
        f"{slack_date(since)} ({code(aws_error)}): nobody here can tell how "
        f"{code(info.get('flag'))} rolls out. Check it in AppConfig; opsbot keeps looking."
    )
    with services.sessions() as db_session:
        _count(db_session, "stuck")
        _announce(db_session, info, state="UNREADABLE", text=text, now=now)
        db_session.commit()
    return {**info, UNREADABLE_TOLD: True}
