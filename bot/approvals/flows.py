"""Asking for clicks and acting on them: messages, audit, expiry, running the kind.

A click is recorded in its own transaction (with the confirmation message's
update and the audit entry); when it was the last one needed, the kind runs
after that commit, and what came of it is recorded in another. A process that
dies in between leaves the action "executing": its expiry job marks it failed.

A run may outlast the request's expiry (a click just before it, a kind that
makes several AWS calls or waits for a Lambda). So the click that starts the
run also claims the action for `EXECUTION_LEASE`, and the process renews the
claim while it runs (`ExecutionLease`): the expiry job marks a run interrupted
only once its claim has lapsed, and otherwise looks again when it would.

Clicks may come long apart (an approval, then the requester's confirmation ten
minutes later), and a click's right is checked when it is made. So before a
kind runs, every click of someone other than the requester is checked again
(`require_clicks_still_count`): one whose right is gone by then (removed from
the deployers, a group left) fails the request, audited and said in its thread,
and nothing runs. The requester's own right is the kind's to check again, with
the rest of its checks; only whether Slack can confirm it is looked at here
first, as for the others' clicks.

A right Slack cannot confirm just then (it cannot list a group: an error, a
rate limit) counts for nothing, but is no lost right: the click that would
start the run checks the others' clicks and the requester's right first, and
if one cannot be checked it is not counted ("could not check", `approval.run`
failed, `unverifiable`), and the request stays open to be clicked again. Should
the run itself still find one it cannot check (the kind raises
ClicksUnverifiable for the requester's, `requester_unverifiable`), the request
fails the same way, without saying anyone's right is gone.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from bot.approvals import render
from bot.approvals import service as approvals
from bot.approvals.errors import (
    ActionFailed,
    ClickRefused,
    ClicksLapsed,
    ClicksUnverifiable,
    ClickUnverifiable,
    RequesterRightLost,
)
from bot.approvals.models import (
    CANCELLED,
    DONE,
    EXECUTING,
    EXPIRED,
    FAILED,
    INTERRUPTED,
    PendingAction,
)
from bot.approvals.registry import APPROVE, CANCEL, CONFIRM, DECISIONS, get_or_raise
from bot.apps.errors import NotAllowed, RightUnverifiable
from bot.audit import service as audit
from bot.db import committed
from bot.outbox import service as outbox

if TYPE_CHECKING:
    from bot.apps.services import Services
    from bot.observability.metrics import Metrics

log = logging.getLogger(__name__)

EXPIRE_JOB = "approvals.expire"
# How long a run's claim lasts unrenewed: far longer than a renewal takes, or than
# the clocks of two instances disagree; short enough that a dead run is soon said.
EXECUTION_LEASE = timedelta(minutes=2)
RENEW_EVERY_S = 30.0
# Per kind: what else a run presumed dead records, in the transaction that marks it
# failed (the domain's own audit line and count: what the run did is unknown).
_ON_INTERRUPTED: dict[str, Callable[[Session, PendingAction, datetime], None]] = {}


def on_interrupted(kind: str, record: Callable[[Session, PendingAction, datetime], None]) -> None:
    """Have `record(db_session, action, now)` called when a run of `kind` is marked interrupted."""
    _ON_INTERRUPTED[kind] = record


# -- counted once they commit ---------------------------------------------------------------

_CLICKS = "approvals.clicks"  # Session.info: (decision, outcome) counted once it commits
_ENDED = "approvals.ended"  # Session.info: how requests ended, counted once it commits
# The `outcome` of opsbot_approval_clicks_total: counted, refused, or not counted because a
# right Slack could not confirm just then.
CLICK_OK, CLICK_REFUSED, CLICK_UNVERIFIABLE = "ok", "refused", "unverifiable"
# The `outcome` of opsbot_approvals_ended_total for a run presumed dead (its claim lapsed).
ENDED_INTERRUPTED = "interrupted"


def _count_click(db_session: Session, *, decision: str, outcome: str) -> None:
    """Count a click in opsbot_approval_clicks_total once this session commits."""
    label = decision if decision in DECISIONS else "other"
    committed.note(db_session, _CLICKS, (label, outcome))


def _count_ended(db_session: Session, outcome: str) -> None:
    """Count a request's end in opsbot_approvals_ended_total once this session commits."""
    committed.note(db_session, _ENDED, outcome)


def count_after_commit(sessions: sessionmaker[Session], metrics: Metrics) -> None:
    """Count clicks and requests' ends once their audit lines commit."""
    committed.on_commit(sessions, _CLICKS, lambda item: metrics.approval_clicks.labels(*item).inc())
    committed.on_commit(
        sessions, _ENDED, lambda outcome: metrics.approvals_ended.labels(outcome).inc()
    )


class ExecutionLease:
    """Renews an executing action's claim from a thread while this process runs it."""

    def __init__(
        self, services: Services, *, action_id: int, every_s: float = RENEW_EVERY_S
    ) -> None:
        self.services = services
        self.action_id = action_id
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"approval-lease-{action_id}", daemon=True
        )

    def __enter__(self) -> ExecutionLease:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def renew(self) -> bool:
        """Extend the claim by EXECUTION_LEASE from now; False once the action is not executing."""
        with self.services.sessions() as db_session:
            renewed = approvals.renew_claim(
                db_session,
                action_id=self.action_id,
                until=self.services.clock.now() + EXECUTION_LEASE,
            )
            db_session.commit()
            return renewed

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                if not self.renew():
                    return
            except Exception:  # the database may be back by the next renewal, well within the lease
                log.warning("request %s: cannot renew its claim", self.action_id, exc_info=True)


@dataclass(frozen=True)
class ClickOutcome:
    """What the person who clicked is told (only them)."""

    text: str
    ran: bool = False


def sync_message(db_session: Session, *, action: PendingAction, now: Any) -> None:
    kind = get_or_raise(action.kind)
    outbox.post_or_update(
        db_session,
        key=action.message_key,
        channel=action.channel,
        message=render.confirmation(action, confirm_label=kind.confirm_label),
        now=now,
    )


def request(
    services: Services,
    db_session: Session,
    *,
    kind: str,
    target: str,
    summary: str,
    details: list[str],
    payload: dict[str, Any],
    requested_by: str,
    channel: str,
    needs_confirmation: bool,
    required_approvals: int,
    ttl_min: float,
) -> PendingAction:
    """Record a pending action and post its confirmation message (then: `schedule_expiry`)."""
    get_or_raise(kind)
    now = services.clock.now()
    action = approvals.create(
        db_session,
        kind=kind,
        target=target,
        summary=summary,
        details=details,
        payload=payload,
        requested_by=requested_by,
        channel=channel,
        needs_confirmation=needs_confirmation,
        required_approvals=required_approvals,
        now=now,
        ttl=timedelta(minutes=ttl_min),
    )
    sync_message(db_session, action=action, now=now)
    audit.record(
        db_session,
        at=now,
        actor=requested_by,
        action="approval.request",
        target=target,
        outcome="ok",
        detail={
            "request": action.id,
            "kind": kind,
            "summary": summary,
            "needs_confirmation": needs_confirmation,
            "required_approvals": required_approvals,
        },
    )
    log.info(
        "request %s (%s on %s) asked by %s",
        action.id,
        kind,
        target,
        requested_by,
        extra={"request": action.id, "slack_user": requested_by, "target": target},
    )
    return action


def schedule_expiry(services: Services, *, action: PendingAction) -> None:
    """Schedule the action's expiry: call it after the commit that recorded the action.

    The job store writes in its own transaction (on SQLite it would wait for
    the caller's to end), and a job for an action that was never committed
    finds nothing and does nothing.
    """
    services.scheduler.schedule(
        EXPIRE_JOB, at=action.expires_at, job_id=f"approval-expire-{action.id}", action_id=action.id
    )


def ask(
    services: Services,
    *,
    kind: str,
    target: str,
    summary: str,
    details: list[str],
    payload: dict[str, Any],
    requested_by: str,
    channel: str,
    needs_confirmation: bool,
    required_approvals: int,
) -> PendingAction:
    """Record a pending action in its own transaction, post it, and schedule its expiry.

    It lives for the configured `deploys.confirm_ttl_min`, whatever its kind.
    """
    with services.sessions() as db_session:
        action = request(
            services,
            db_session,
            kind=kind,
            target=target,
            summary=summary,
            details=details,
            payload=payload,
            requested_by=requested_by,
            channel=channel,
            needs_confirmation=needs_confirmation,
            required_approvals=required_approvals,
            ttl_min=services.config.deploys.confirm_ttl_min,
        )
        db_session.commit()
    schedule_expiry(services, action=action)
    return action


def waits_for(action: PendingAction, *, confirmer: str = "your confirmation") -> str:
    """What the action waits for, for the person who asked: "your confirmation and ..."."""
    needs = [confirmer] if action.needs_confirmation else []
    if action.required_approvals:
        needs.append("the approval of a second person")
    return " and ".join(needs)


@contextmanager
def as_requesters_right(actor: str, *, doing: str, waited: bool) -> Iterator[None]:
    """Say a right the requester lost, in a request that `waited` for clicks, as theirs.

    Someone else's click may be the one that runs it, while the right checked is
    the requester's: "<@alice>, who asked, may no longer force deploys", not "You
    may not" to the approver. A right Slack could not confirm is left as it is.
    """
    try:
        yield
    except RightUnverifiable:
        raise
    except NotAllowed as exc:
        if not waited:
            raise
        said = str(exc)
        plain = f"You may not {doing}."
        why = said.removeprefix(plain).strip() if said.startswith(plain) else f"({said})"
        raise RequesterRightLost(
            f"{render.actor_text(actor)}, who asked, may no longer {doing}. {why} "
            "Nothing was changed.",
            said=f"you may no longer {doing}. Nothing was changed.",
        ) from exc


def added_clicks(
    action: PendingAction, *, needs_confirmation: bool, required_approvals: int
) -> list[str]:
    """The clicks demanded now that `action` was not asked under, as people read them.

    A request waits for the clicks its environment demanded when it was asked; one
    demanded since (a changed configuration, a rolling deploy handing the click to
    an instance with another) is nothing anyone agreed to go without, so its kind
    refuses to run while this is not empty. Asked under more than is needed now
    adds nothing: those clicks are in. Environments demand at most one approval,
    a second person's.
    """
    added = []
    if needs_confirmation and not action.needs_confirmation:
        added.append("the requester's confirmation")
    if required_approvals > action.required_approvals:
        added.append("the approval of a second person")
    return added


def _refused_click(
    services: Services, *, action: PendingAction, user_id: str, decision: str, error: ClickRefused
) -> None:
    """Audit, count and log a click that did not count."""
    unverifiable = isinstance(error, ClickUnverifiable)
    detail = {"request": action.id, "summary": action.summary, "reason": str(error)}
    if isinstance(error, ClickUnverifiable):  # not counted, yet nobody was found without the right
        detail["unverifiable"] = error.reason
    with services.sessions() as db_session:
        audit.record(
            db_session,
            at=services.clock.now(),
            actor=user_id,
            action=f"approval.{decision}",
            target=action.target,
            outcome="failed" if unverifiable else "refused",
            detail=detail,
        )
        outcome = CLICK_UNVERIFIABLE if unverifiable else CLICK_REFUSED
        _count_click(db_session, decision=decision, outcome=outcome)
        db_session.commit()
    log.info(
        "request %s: %s by %s %s: %s",
        action.id,
        decision,
        user_id,
        "not counted" if unverifiable else "refused",
        str(error)[:300],
        extra={"request": action.id, "slack_user": user_id, "target": action.target},
    )


def _unverifiable_detail(
    action: PendingAction, *, error: ClicksUnverifiable, result: str
) -> dict[str, Any]:
    """An `approval.run` failed for a right Slack could not confirm: no right was lost."""
    return {
        "request": action.id,
        "kind": action.kind,
        "summary": action.summary,
        "requested_by": action.requested_by,
        "reason": "unverifiable",
        "unverifiable": error.unverifiable,
        "result": result,
    }


def _require_clicks_checkable(
    services: Services, *, action: PendingAction, user_id: str, decision: str
) -> None:
    """Before the click that would start the run: raise ClickUnverifiable, uncounted, if
    Slack cannot confirm another click's right just now; the request stays open.

    A click that lapsed is left to the run, which fails the request for it.
    """
    try:
        require_clicks_still_count(services, action)
    except ClicksUnverifiable as exc:
        text = f"{exc}; nothing was changed: {decision} again in a minute."
        with services.sessions() as db_session:
            detail = _unverifiable_detail(action, error=exc, result=text)
            audit.record(
                db_session,
                at=services.clock.now(),
                actor="opsbot",
                action="approval.run",
                target=action.target,
                outcome="failed",
                detail={**detail, "clicked_by": user_id, "decision": decision, "left": "pending"},
            )
            _count_click(db_session, decision=decision, outcome=CLICK_UNVERIFIABLE)
            db_session.commit()
        log.warning(
            "request %s: %s by %s not counted: %s",
            action.id,
            decision,
            user_id,
            exc,
            extra={"request": action.id, "slack_user": user_id, "target": action.target},
        )
        raise ClickUnverifiable(
            text, reason="; ".join(c["reason"] for c in exc.unverifiable)
        ) from exc
    except ClicksLapsed:
        return


def click(services: Services, *, action_id: int, user_id: str, decision: str) -> ClickOutcome:
    """Apply one person's click; run the action if it was the last click needed.

    A click that does not count raises ClickRefused (and is audited as refused);
    one whose right, or another click's, Slack cannot confirm just now raises
    ClickUnverifiable (audited as failed) and may be made again.
    Rights are checked before the row is locked: they may ask Slack who is in
    a user group, which must not happen inside a transaction.
    """
    with services.sessions() as db_session:
        seen = approvals.get_or_raise(db_session, action_id=action_id)
    kind = get_or_raise(seen.kind)
    try:
        if seen.is_pending:
            kind.authorize(services, seen, user_id, decision)
    except ClickRefused as exc:
        _refused_click(services, action=seen, user_id=user_id, decision=decision, error=exc)
        raise
    if services.clock.now() < seen.expires_at and approvals.would_complete(
        seen, user_id=user_id, decision=decision
    ):
        _require_clicks_checkable(services, action=seen, user_id=user_id, decision=decision)
    with services.sessions() as db_session:
        now = services.clock.now()
        action = approvals.get_or_raise(db_session, action_id=action_id, lock=True)
        if action.is_pending and now >= action.expires_at:
            _expire(db_session, action=action, now=now)
            db_session.commit()
            expired = ClickRefused(f"Request #{action.id} has expired; ask again.")
            _refused_click(services, action=seen, user_id=user_id, decision=decision, error=expired)
            raise expired
        try:
            approvals.apply_click(
                db_session, action=action, user_id=user_id, decision=decision, now=now
            )
        except ClickRefused as exc:
            db_session.rollback()
            _refused_click(services, action=seen, user_id=user_id, decision=decision, error=exc)
            raise
        audit.record(
            db_session,
            at=now,
            actor=user_id,
            action=f"approval.{decision}",
            target=action.target,
            outcome="ok",
            detail={"request": action.id, "kind": action.kind, "summary": action.summary},
        )
        _count_click(db_session, decision=decision, outcome=CLICK_OK)
        if action.status == CANCELLED:
            _count_ended(db_session, CANCELLED)
        if action.status == EXECUTING:  # the last click: this process runs it, and says so
            approvals.claim(db_session, action=action, until=now + EXECUTION_LEASE)
        sync_message(db_session, action=action, now=now)
        db_session.commit()
        log.info(
            "request %s: %s by %s",
            action.id,
            decision,
            user_id,
            extra={"request": action.id, "slack_user": user_id, "target": action.target},
        )
        if decision == CANCEL:
            return ClickOutcome(f"Cancelled request #{action.id}.")
        if action.status != EXECUTING:
            return ClickOutcome(f"Noted. Now {render.state_text(action)}.")
    return ClickOutcome(execute(services, action_id=action_id), ran=True)


_DONE = {CONFIRM: "confirmed", APPROVE: "approved"}
_CLICK = {CONFIRM: "confirmation", APPROVE: "approval"}
# The "decision" of the requester's own right in ClicksUnverifiable: the run is theirs.
REQUESTED = "request"


def _others_clicks(action: PendingAction) -> list[tuple[str, str]]:
    """(user, decision) of every click that counted, other than the requester's own."""
    clicks = []
    if action.confirmed_by and action.confirmed_by != action.requested_by:
        clicks.append((action.confirmed_by, CONFIRM))  # were one recorded: checked as others
    clicks.extend((user, APPROVE) for user in action.approvers if user != action.requested_by)
    return clicks


def _unverifiable_text(entry: dict[str, str]) -> str:
    who = render.actor_text(entry["user"])
    if entry["decision"] == REQUESTED:
        return f"opsbot could not check the right of {who}, who asked for it ({entry['reason']})"
    return f"opsbot could not check {who}'s right to {entry['decision']} ({entry['reason']})"


def requester_unverifiable(action: PendingAction, *, reason: str) -> ClicksUnverifiable:
    """What a kind raises when Slack cannot confirm the requester's right as it runs."""
    entry = {"user": action.requested_by, "decision": REQUESTED, "reason": reason}
    return ClicksUnverifiable(_unverifiable_text(entry), unverifiable=[entry])


def require_clicks_still_count(services: Services, action: PendingAction) -> None:
    """Raise ClicksLapsed unless everyone but the requester who clicked may still do so.

    Each click is put to the kind's `authorize` again, as if it were made now.
    ClicksUnverifiable when none lapsed but Slack could not confirm one's right,
    or the requester's (put to `authorize` as a confirmation: the environment's
    right). Whether the requester's right holds is the kind's to say as it runs,
    naming the right that is missing.
    Call it outside a transaction: rights may ask Slack who is in a user group.
    """
    kind = get_or_raise(action.kind)
    lapsed = []
    unverifiable = []
    for user, decision in _others_clicks(action):
        try:
            kind.authorize(services, action, user, decision)
        except ClickUnverifiable as exc:  # no answer from Slack is not a "no"
            unverifiable.append({"user": user, "decision": decision, "reason": exc.reason})
        except ClickRefused as exc:
            lapsed.append({"user": user, "decision": decision, "reason": str(exc)})
    try:
        kind.authorize(services, action, action.requested_by, CONFIRM)
    except ClickUnverifiable as exc:
        unverifiable.append(
            {"user": action.requested_by, "decision": REQUESTED, "reason": exc.reason}
        )
    except ClickRefused:  # the kind refuses the run for it
        pass
    if lapsed:
        said = " ".join(
            f"{render.actor_text(c['user'])} {_DONE[c['decision']]} it but may not any more: "
            f"{c['reason']}"
            for c in lapsed
        )
        raise ClicksLapsed(
            f"Refused when it came to run: {said} Nothing was changed: ask again.", lapsed=lapsed
        )
    if unverifiable:
        said = "; ".join(_unverifiable_text(c) for c in unverifiable)
        raise ClicksUnverifiable(said, unverifiable=unverifiable)


# An "Allowed: <@U1>, <!subteam^S1>." list, as a refusal names who holds a right.
_ALLOWED_LIST = re.compile(r"\s*Allowed: [^.]*\.")


def told_requester(error: BaseException) -> str:
    """Why a run failed, as the request's thread tells the requester.

    What an error, or one it was raised from, says for the requester (`said`:
    "you may no longer ..." rather than "<@alice>, who asked, ..."), else its
    message; without any "Allowed:" list, whose mentions would ping every
    person and group in it (a new message notifies everyone it names).
    """
    seen: BaseException | None = error
    while seen is not None:
        said = getattr(seen, "said", None)
        if isinstance(said, str):
            return _ALLOWED_LIST.sub("", said)
        seen = seen.__cause__
    return _ALLOWED_LIST.sub("", str(error))


def _tell_requester(db_session: Session, *, action: PendingAction, text: str, now: Any) -> None:
    """Say `text` in the request's thread: a new message, which notifies whom it names
    (the update of the request's own message notifies nobody)."""
    outbox.reply_in_thread(
        db_session,
        key=action.message_key,
        channel=action.channel,
        fold_key=None,
        item={"text": text},
        render=render.text_reply,
        now=now,
    )


def _run_stopped(
    db_session: Session,
    *,
    action: PendingAction,
    outcome: str,
    detail: dict[str, Any],
    text: str,
    now: Any,
) -> None:
    """Audit a run stopped before its kind ran, and say so in the request's thread."""
    audit.record(
        db_session,
        at=now,
        actor="opsbot",
        action="approval.run",
        target=action.target,
        outcome=outcome,
        detail=detail,
    )
    _tell_requester(db_session, action=action, text=text, now=now)


def _lapsed(
    db_session: Session, *, action: PendingAction, error: ClicksLapsed, result: str, now: Any
) -> None:
    """A run refused for a click that lapsed."""
    # Without the reasons, whose "Allowed:" would ping a whole group: the message says why.
    which = "; ".join(
        f"{render.actor_text(c['user'])}'s {_CLICK[c['decision']]} no longer counts: they may "
        f"not {c['decision']} it any more"
        for c in error.lapsed
    )
    _run_stopped(
        db_session,
        action=action,
        outcome="refused",
        detail={
            "request": action.id,
            "kind": action.kind,
            "summary": action.summary,
            "requested_by": action.requested_by,
            "lapsed": error.lapsed,
            "reason": result,
        },
        text=f":no_entry: {render.actor_text(action.requested_by)}: request "
        f"#{action.id} did not run. {which}. Nothing was changed: ask again.",
        now=now,
    )


def _unverifiable(
    db_session: Session, *, action: PendingAction, error: ClicksUnverifiable, result: str, now: Any
) -> None:
    """A run failed for a right Slack could not confirm."""
    _run_stopped(
        db_session,
        action=action,
        outcome="failed",
        detail={**_unverifiable_detail(action, error=error, result=result), "left": FAILED},
        text=f":warning: {render.actor_text(action.requested_by)}: request "
        f"#{action.id} did not run: {error}. Nothing was changed: ask again in a minute.",
        now=now,
    )


def execute(services: Services, *, action_id: int) -> str:
    """Run an action whose clicks are all in (and claimed), and record what came of it.

    Everyone else's clicks are checked again first: one that lapsed runs nothing.
    A run that fails is said in the request's thread, to the requester: whoever
    clicked last is told in their answer, and nobody else would learn of it.
    """
    with services.sessions() as db_session:
        action = approvals.get_or_raise(db_session, action_id=action_id)
        kind = get_or_raise(action.kind)
    lapsed: ClicksLapsed | None = None
    unverifiable: ClicksUnverifiable | None = None
    told: str | None = None  # what the request's thread tells the requester, when it failed
    who = render.actor_text(action.requested_by)
    try:
        with ExecutionLease(services, action_id=action_id):
            require_clicks_still_count(services, action)
            result = kind.execute(services, action)
        status = DONE
    except ClicksLapsed as exc:
        result, status, lapsed = str(exc), FAILED, exc
    # A click came in meanwhile, or Slack failed since (for a click, or for the
    # requester's right as the kind checked it).
    except ClicksUnverifiable as exc:
        result = f"Not run: {exc}. Nothing was changed: ask again in a minute."
        status, unverifiable = FAILED, exc
    except ActionFailed as exc:
        result, status = str(exc), FAILED
        told = f":no_entry: {who}: request #{action_id} did not run: {told_requester(exc)}"
    except Exception as exc:
        log.exception("request %s (%s) failed", action_id, action.kind)
        result, status = f"Failed unexpectedly ({type(exc).__name__}); see the bot's logs.", FAILED
        told = (
            f":x: {who}: request #{action_id} failed unexpectedly ({type(exc).__name__}): part "
            "of it may have been done. Check the state; the bot's logs say more."
        )
    with services.sessions() as db_session:
        now = services.clock.now()
        action = approvals.get_or_raise(db_session, action_id=action_id, lock=True)
        if lapsed is not None:
            _lapsed(db_session, action=action, error=lapsed, result=result, now=now)
        if unverifiable is not None:
            _unverifiable(db_session, action=action, error=unverifiable, result=result, now=now)
        if action.status == EXECUTING or action.interrupted:
            late = action.interrupted  # its end was counted as interrupted already
            if late:
                # Its claim lapsed (renewals failed) and it was presumed dead: what it
                # really did replaces the presumption, openly.
                log.warning("request %s ended after it was marked interrupted", action_id)
                audit.record(
                    db_session,
                    at=now,
                    actor="opsbot",
                    action="approval.late_result",
                    target=action.target,
                    outcome="ok" if status == DONE else "failed",
                    detail={"request": action.id, "kind": action.kind, "result": result},
                )
            approvals.finish(db_session, action=action, status=status, result=result)
            sync_message(db_session, action=action, now=now)
            if told is not None:  # a lapsed click or an unverifiable right said so above
                _tell_requester(db_session, action=action, text=told, now=now)
            if not late:
                _count_ended(db_session, status)
        else:  # nothing else ends a claimed run: keep what is recorded
            log.error("request %s was %s when its run ended", action_id, action.status)
        db_session.commit()
    log.info(
        "request %s (%s) %s",
        action_id,
        action.kind,
        status,
        extra={"request": action_id, "target": action.target},
    )
    return result


def _expire(db_session: Session, *, action: PendingAction, now: Any) -> None:
    if approvals.expire(db_session, action=action, now=now):
        audit.record(
            db_session,
            at=now,
            actor="opsbot",
            action="approval.expire",
            target=action.target,
            outcome="ok",
            detail={"request": action.id, "kind": action.kind, "summary": action.summary},
        )
        sync_message(db_session, action=action, now=now)
        _count_ended(db_session, EXPIRED)
        log.info(
            "request %s (%s on %s) by %s expired without every click: %s",
            action.id,
            action.kind,
            action.target,
            action.requested_by,
            render.state_text(action) or "no click asked",
            extra={
                "request": action.id,
                "slack_user": action.requested_by,
                "target": action.target,
            },
        )


def expire_if_due(services: Services, *, action_id: int) -> None:
    """The expiry job: a request nobody finished expires; one whose run died fails.

    A run still holding its claim is alive: it is looked at again when the claim
    would lapse (a dead process renews nothing).
    """
    retry_at = None
    interrupted: PendingAction | None = None
    with services.sessions() as db_session:
        now = services.clock.now()
        action = approvals.get(db_session, action_id=action_id, lock=True)
        if action is None:
            return
        if action.is_pending:
            if now < action.expires_at:  # the clock disagrees with the job's: look again then
                retry_at = action.expires_at
            else:
                _expire(db_session, action=action, now=now)
        elif approvals.is_stale_execution(action, now=now):
            approvals.finish(db_session, action=action, status=FAILED, result=INTERRUPTED)
            audit.record(
                db_session,
                at=now,
                actor="opsbot",
                action="approval.interrupted",
                target=action.target,
                outcome="failed",
                detail={
                    "request": action.id,
                    "kind": action.kind,
                    "summary": action.summary,
                    "claimed_until": action.expires_at.isoformat(),
                },
            )
            if action.kind in _ON_INTERRUPTED:
                _ON_INTERRUPTED[action.kind](db_session, action, now)
            sync_message(db_session, action=action, now=now)
            _tell_requester(
                db_session,
                action=action,
                text=f":warning: {render.actor_text(action.requested_by)}: request #{action.id} "
                "was interrupted: the bot stopped while running it, and what it did is "
                "unknown. Check the state before you ask again.",
                now=now,
            )
            _count_ended(db_session, ENDED_INTERRUPTED)
            interrupted = action
        elif action.status == EXECUTING:
            retry_at = action.expires_at
        db_session.commit()
    if interrupted is not None:  # whatever it did is unknown: someone should look
        log.warning(
            "request %s (%s on %s) interrupted: its run's claim lapsed at %s without an end",
            interrupted.id,
            interrupted.kind,
            interrupted.target,
            interrupted.expires_at.isoformat(),
            extra={"request": interrupted.id, "target": interrupted.target},
        )
    if retry_at is not None:
        services.scheduler.schedule(
            EXPIRE_JOB,
            at=retry_at,
            job_id=f"approval-expire-{action_id}-{int(now.timestamp())}",
            action_id=action_id,
        )
