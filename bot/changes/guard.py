"""A deploy, rollback or flag change asked while an incident on its app environment is open.

`/deploy`, `/rollback` and `/flag` come here first. With an incident open on
the same app environment (the claims put `app`/`env` on every alarm's
incident), the person is asked, ephemerally, "#42 prod-api-5xx is open;
deploy anyway?" with Continue and Cancel (an incident in a channel they
cannot see is named by its number alone). The question carries no authority:
Someone who may not make the change is refused at once (audited), not asked.
Continue rebuilds the request with the clicker's verified Slack id and runs
it through `bot/deploys/requests.submit` or `bot/flags/flows.submit`, every
gate again (rights, locks, freeze, confirmation and approval, the audit). A
question is answered once (an inbound receipt on its token), so a Continue
clicked twice acts once. A question holds for `QUESTION_TTL` after it was
asked, and only while the incidents open on the app environment are those it
named: otherwise Continue does nothing and says to ask again, so consent
given about #42 never covers #57. What ran is linked onto each open incident
of the app environment: a timeline entry and a reply in its thread.

The undo buttons of an incident's message (bot/changes/flows.undo) do not
come here: they are the response to that very incident, and link themselves.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.approvals.render import actor_text
from bot.apps.errors import AppError, RightUnverifiable
from bot.apps.registry import get_target_or_raise
from bot.audit import service as audit
from bot.changes.errors import QuestionRefused
from bot.deploys.models import ROLLBACK
from bot.deploys.plans import Request
from bot.deploys.requests import submit as submit_deploy
from bot.flags import flows as flag_flows
from bot.flags.requests import VERBS, Change
from bot.inbound import service as receipts
from bot.incidents import flows as incident_flows
from bot.incidents import service as incidents
from bot.incidents.models import Incident
from bot.incidents.render import clip
from bot.slack_text import code, escape

if TYPE_CHECKING:
    from bot.apps.services import Services

log = logging.getLogger(__name__)

CONTINUE = "change_anyway:continue"
CANCEL = "change_anyway:cancel"
ACTION_PATTERN = r"^change_anyway:(continue|cancel)$"
RECEIPT_SOURCE = "change-question"  # inbound_receipts: a question answered once
RECEIPT_LEASE_S = 24 * 3600.0  # a Continue that died half-way is not retried by a click
CHANGE_EVENT = "change"  # an incident's timeline: a change made while it was open
VALUE_MAX = 2000  # Slack's limit on a button's value
# A question older than this is not answered: what is open, and who runs what, moves on.
QUESTION_TTL = timedelta(minutes=15)
EXPIRED = "This question expired: nothing was done. Ask again."
DEPLOY_KINDS = ("deploy", "rollback")
FLAG = "flag"
# What a question's button may carry back: what the commands themselves take, no more
# (never an actor, a channel, a CLI identity or a pinned digest).
DEPLOY_FIELDS = ("app", "env", "kind", "tag", "rollback_of", "force_reason")
FLAG_FIELDS = ("app", "env", "verb", "flag", "attributes")


@dataclass(frozen=True)
class Question:
    """The ephemeral answer that asks before a change (an answer body for a response_url)."""

    body: dict[str, Any]


NAMED = 3  # open incidents named in a question; the rest are counted


def _names(found: list[Incident], *, seen: set[int]) -> str:
    """The first open incidents by number, with the titles of those in `seen` only."""
    named = [
        f"#{i.id} {code(clip(i.title, 80))}" if i.id in seen else f"#{i.id}" for i in found[:NAMED]
    ]
    more = f" and {len(found) - NAMED} more" if len(found) > NAMED else ""
    return ", ".join(named) + more


def _seen_by(services: Services, actor: str, found: list[Incident]) -> set[int]:
    """The named incidents whose channel `actor` can see: only they are named by title.

    Someone who cannot see an incident's channel is told its number, nothing
    more (docs/security.md); when Slack cannot say, they cannot.
    """
    named = found[:NAMED]
    channels = {(i.channel, i.slack_channel_id) for i in named}
    sees = {c: services.rights.may_see(actor, *c) for c in channels}
    return {i.id for i in named if sees[(i.channel, i.slack_channel_id)]}


def _verb(kind: str) -> str:
    return {"deploy": "deploy", "rollback": "roll back"}.get(kind, "change the flag")


def _question(
    *,
    found: list[Incident],
    seen: set[int],
    kind: str,
    label: str,
    payload: dict[str, Any],
    now: datetime,
) -> Question | str:
    """`seen`: the ids of the incidents the asker may see (`_seen_by`).

    The buttons carry when the question was asked and which incidents it
    named (every open one, named or counted), checked when they are clicked.
    """
    token = secrets.token_urlsafe(16)
    data = {
        "t": token,
        "k": kind,
        "p": payload,
        "at": int(now.timestamp()),
        "i": sorted(i.id for i in found),
    }
    value = json.dumps(data, separators=(",", ":"))
    are = "is" if len(found) == 1 else "are"
    names = _names(found, seen=seen)
    text = (
        f":warning: {names} {are} open on {code(label)}; {_verb(kind)} anyway? "
        "Nothing starts until you continue."
    )
    if len(value) > VALUE_MAX:
        return (
            f":warning: {names} {are} open on {code(label)}, and this request is too long "
            "to ask about in a button: shorten it (the `--force` reason) and ask again."
        )
    buttons = [
        {
            "type": "button",
            "action_id": CONTINUE,
            "text": {"type": "plain_text", "text": f"Continue: {_verb(kind)}"[:75]},
            "style": "danger",
            "value": value,
        },
        {
            "type": "button",
            "action_id": CANCEL,
            "text": {"type": "plain_text", "text": "Cancel"},
            "value": value,  # a Cancel answers the question too: no Continue after it
        },
    ]
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "block_id": f"change_anyway:{token[:8]}", "elements": buttons},
    ]
    body = {"response_type": "ephemeral", "replace_original": False, "text": text}
    return Question(body={**body, "blocks": blocks})


def _only(payload: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {k: payload[k] for k in fields if payload.get(k) not in (None, {})}


def _deploy_payload(request: Request) -> dict[str, Any]:
    return _only(request.to_payload(), DEPLOY_FIELDS)


def _flag_payload(change: Change) -> dict[str, Any]:
    return _only(change.to_payload(), FLAG_FIELDS)


def _may(
    services: Services,
    *,
    actor: str,
    app: str,
    env: str,
    action: str,
    audit_action: str,
    detail: dict[str, Any],
) -> None:
    """Refuse at once (audited) whoever may not make the change: they are not asked.

    A right Slack could not confirm is audited "failed", not "refused": nobody
    was found without it.
    """
    try:
        target = get_target_or_raise(services.config, app=app, env=env)
        services.access.require(actor, target, action=action)
    except AppError as exc:
        outcome = "refused"
        if isinstance(exc, RightUnverifiable):
            outcome, detail = "failed", {**detail, "unverifiable": exc.reason}
        with services.sessions() as db_session:
            audit.record(
                db_session,
                at=services.clock.now(),
                actor=actor,
                action=audit_action,
                target=f"{'flag' if audit_action.startswith('flag') else 'deploy'}:{app}/{env}",
                outcome=outcome,
                detail={**detail, "reason": str(exc)},
            )
            db_session.commit()
        raise


def deploy(services: Services, request: Request) -> Question | str:
    """`/deploy` and `/rollback`: ask first when an incident is open there, else submit."""
    with services.sessions() as db_session:
        found = incidents.open_for_app(db_session, app=request.app, env=request.env)
    if found:
        _may(
            services,
            actor=request.actor,
            app=request.app,
            env=request.env,
            action="roll back" if request.kind == ROLLBACK else "deploy to",
            audit_action=f"{request.kind}.request",
            detail=_deploy_payload(request),
        )
        return _question(
            found=found,
            seen=_seen_by(services, request.actor, found),
            kind=request.kind,
            label=request.label,
            payload=_deploy_payload(request),
            now=services.clock.now(),
        )
    return submit_deploy(services, request).text


def flag(services: Services, change: Change) -> Question | str:
    """`/flag on|off|set`: ask first when an incident is open there, else submit."""
    with services.sessions() as db_session:
        found = incidents.open_for_app(db_session, app=change.app, env=change.env)
    if found:
        _may(
            services,
            actor=change.actor,
            app=change.app,
            env=change.env,
            action="change feature flags of",
            audit_action="flag.change",
            detail={"flag": change.flag, "asked": change.what},
        )
        return _question(
            found=found,
            seen=_seen_by(services, change.actor, found),
            kind=FLAG,
            label=change.label,
            payload=_flag_payload(change),
            now=services.clock.now(),
        )
    return flag_flows.submit(services, change)


@dataclass(frozen=True)
class Asked:
    """A question's button value, read back: the request rebuilt as the clicker's."""

    token: str
    change: Request | Change
    at: datetime | None  # when it was asked (None: a value of before questions carried it)
    incidents: tuple[int, ...] | None  # the open incidents it was about


def _asked_at(data: dict[str, Any]) -> tuple[datetime | None, tuple[int, ...] | None]:
    at, ids = data.get("at"), data.get("i")
    if not isinstance(at, int) or isinstance(at, bool) or not isinstance(ids, list):
        return None, None
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ValueError("incident ids")
    return datetime.fromtimestamp(at, UTC), tuple(sorted(ids))


def _parse(value: str, *, user_id: str, channel: str | None) -> Asked:
    """The question's button value, rebuilt as a request by `user_id` (raises ValueError)."""
    data = json.loads(value)
    if not isinstance(data, dict) or not isinstance(data.get("p"), dict):
        raise ValueError("not a question")
    token, kind, carried = data.get("t"), data.get("k"), dict(data["p"])
    if not isinstance(token, str) or not 8 <= len(token) <= 64:
        raise ValueError("no token")
    at, incidents_then = _asked_at(data)
    return Asked(token, _rebuilt(kind, carried, user_id, channel), at, incidents_then)


def _rebuilt(
    kind: Any, carried: dict[str, Any], user_id: str, channel: str | None
) -> Request | Change:
    if kind in DEPLOY_KINDS:
        payload = {**_only(carried, DEPLOY_FIELDS), "actor": user_id, "channel": channel}
        request = Request.from_payload(payload)
        if request.kind != kind:
            raise ValueError("kind mismatch")
        return request
    if kind == FLAG:
        payload = {**_only(carried, FLAG_FIELDS), "actor": user_id, "channel": channel}
        change = Change.from_payload(payload)
        if change.verb not in VERBS:
            raise ValueError("unknown verb")
        return change
    raise ValueError("unknown kind")


def _answered(services: Services, token: str) -> bool:
    """Claim the question's token: False when it was answered already."""
    with services.sessions() as db_session:
        claimed = receipts.claim(
            db_session,
            source=RECEIPT_SOURCE,
            key=token,
            now=services.clock.now(),
            lease_s=RECEIPT_LEASE_S,
        )
        if claimed:
            receipts.complete(db_session, source=RECEIPT_SOURCE, key=token)
        db_session.commit()
        return not claimed


def _link(services: Services, *, app: str, env: str, user_id: str, what: str, answer: str) -> None:
    """Put a change made while incidents were open on their timelines and threads."""
    now = services.clock.now()
    with services.sessions() as db_session:
        for incident in incidents.open_for_app(db_session, app=app, env=env):
            locked = incidents.lock(db_session, incident_id=incident.id)
            if locked is None:
                continue
            incidents.add_event(
                db_session,
                incident=locked,
                kind=CHANGE_EVENT,
                at=now,
                now=now,
                actor=user_id,
                text=clip(f"{what}: {answer}", 500),
                data={"app": app, "env": env, "what": what},
            )
            incident_flows.thread_text(
                db_session,
                incident=locked,
                text=(
                    f":link: {actor_text(user_id)} went ahead while this incident is open: "
                    f"{escape(what)}. {answer}"
                ),
                now=now,
            )
            log.info(
                "change linked onto incident %s by %s",
                locked.id,
                user_id,
                extra={"incident": locked.id, "slack_user": user_id, "app": app, "env": env},
            )
        db_session.commit()


def _describe(change: Request | Change) -> str:
    if isinstance(change, Change):
        return f"/flag {change.what} on {change.label}"
    if change.kind == ROLLBACK:
        to = f" to #{change.rollback_of}" if change.rollback_of is not None else ""
        return f"/rollback {change.label}{to}"
    return f"/deploy {change.app} {change.tag or change.digest or '?'} to {change.label}"


def _still_holds(services: Services, asked: Asked, *, user_id: str, go: bool) -> None:
    """Raise QuestionRefused when the question is too old, or (for Continue) when the
    incidents open on the app environment are no longer those it asked about."""
    app, env = asked.change.app, asked.change.env
    now = services.clock.now()
    if asked.at is None or asked.incidents is None or now - asked.at > QUESTION_TTL:
        log.info(
            "an expired change question on %s/%s answered by %s",
            app,
            env,
            user_id,
            extra={"slack_user": user_id, "app": app, "env": env, "asked_at": str(asked.at)},
        )
        raise QuestionRefused(EXPIRED)
    if not go:
        return
    with services.sessions() as db_session:
        found = incidents.open_for_app(db_session, app=app, env=env)
    if tuple(sorted(i.id for i in found)) == asked.incidents:
        return
    log.info(
        "a change question on %s/%s is stale for %s: asked about %s, open now %s",
        app,
        env,
        user_id,
        list(asked.incidents),
        [i.id for i in found],
        extra={"slack_user": user_id, "app": app, "env": env},
    )
    label = f"{app}/{env}"
    if not found:
        now_open = "none is open now"
    else:
        are = "is" if len(found) == 1 else "are"
        now_open = f"{_names(found, seen=_seen_by(services, user_id, found))} {are} open now"
    raise QuestionRefused(
        f"The incidents open on {code(label)} changed since you were asked ({now_open}): "
        "nothing was done. Ask again."
    )


def answer(services: Services, *, value: str, user_id: str, channel: str | None, go: bool) -> str:
    """Continue (`go`) or Cancel clicked on a question; what the clicker is told.

    Raises QuestionRefused with the reason when the click does nothing (a forged
    or malformed value, a question already answered, expired, or about
    incidents that are no longer the open ones). Continue raises what
    `/deploy` or `/flag` raise when their gates refuse.
    """
    try:
        asked = _parse(value, user_id=user_id, channel=channel)
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, OSError) as exc:
        log.warning("a change question's button sent %r", value[:80])
        raise QuestionRefused("That button names no request: nothing was done.") from exc
    change = asked.change
    app, env = change.app, change.env
    _still_holds(services, asked, user_id=user_id, go=go)
    if _answered(services, asked.token):
        raise QuestionRefused("You already answered this question: nothing more was done.")
    if not go:
        with services.sessions() as db_session:
            audit.record(
                db_session,
                at=services.clock.now(),
                actor=user_id,
                action="change.anyway",
                target=f"{'flag' if isinstance(change, Change) else 'deploy'}:{app}/{env}",
                outcome="cancelled",
                detail={"what": _describe(change)},
            )
            db_session.commit()
        return "Cancelled: nothing was changed."
    if isinstance(change, Change):
        text = flag_flows.submit(services, change)
    else:
        text = submit_deploy(services, change).text
    _link(services, app=app, env=env, user_id=user_id, what=_describe(change), answer=text)
    return text
