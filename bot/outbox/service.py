"""Putting deliveries in the outbox, in the caller's transaction.

Pending work coalesces before it is sent: a Slack message that changes again
before its update went out is updated once, with its latest state; thread
replies with the same fold key merge into one; a PagerDuty event replaces an
unsent event of the same action for the same dedup_key. Coalescing only ever
touches rows no worker has claimed (checked atomically through `version`), so
nothing already on the wire is altered.

Whoever enqueues says whose work it is: `PERSON` (someone clicked and waits
for the effect), `BULK`, or `LATER` (bulk that may wait for other bulk). A
person's delivery lifts what must go out before it (pending work under its
order key, or the update it folds into) to its lane, so it never waits behind
bulk work of its own message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Update, and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from bot.db.statements import update_rows
from bot.outbox import express
from bot.outbox.models import (
    BULK,
    CANCELLED,
    DEAD,
    PAGERDUTY_EVENT,
    PAGERDUTY_REST,
    PENDING,
    PERSON,
    SENT,
    SLACK_MESSAGE,
    SLACK_REPLY,
    SLACK_RESPONSE,
    Delivery,
    SlackMessage,
)
from bot.outbox.pacing import SLACK_UPDATES
from bot.outbox.results import Job, MessageRef, is_persons_call

log = logging.getLogger(__name__)

WAKE_FLAG = "outbox_wake"
# In a Slack message's payload: when the click this update shows was made (ISO 8601).
CLICKED_AT = "clicked_at"

RenderItems = Callable[[list[dict[str, Any]]], dict[str, Any]]

# What a folded thread reply keeps of its items; those between are only counted
# (`earlier`), so its held payload stays bounded however many fold into it. A fold
# renderer reads at most these: the first two (`transitions_reply`'s chain), the last
# ten (the most one lists) and how many there were.
FOLD_KEEPS_FIRST = 2
FOLD_KEEPS_LAST = 10


def slack_target(channel: str) -> str:
    return f"slack:{channel}"


def pagerduty_target(routing_key_env: str) -> str:
    return f"pd:{routing_key_env}"


PAGERDUTY_REST_TARGET = "pd:rest"
# Pending deliveries read under one order key when adding another (see _owed).
OWED_READ = 16
SLACK_RESPONSE_TARGET = "slack:response_url"


def _mark_dirty(db_session: Session) -> None:
    # Read by the after-commit hook that wakes the worker (bot/outbox/wake.py).
    db_session.info[WAKE_FLAG] = True


def _more_urgent(priority: int) -> ColumnElement[int]:
    """A row's priority, raised to `priority` when that is more urgent (lower)."""
    return case((Delivery.priority > priority, priority), else_=Delivery.priority)


def _lift_earlier(
    db_session: Session, *, order_key: str, priority: int, owed: list[Delivery] | None = None
) -> None:
    """Raise pending deliveries under `order_key` (which go out first) to `priority`.

    Ordering only: a claimed row keeps its lease and its version. `owed`: those
    rows, read in this transaction (see `_owed`); when none of them is less
    urgent there is nothing to raise and no UPDATE is sent.
    """
    if priority >= BULK:
        return
    if owed is not None and len(owed) < OWED_READ and all(r.priority <= priority for r in owed):
        return
    db_session.execute(
        update(Delivery)
        .where(
            Delivery.order_key == order_key,
            Delivery.status == PENDING,
            Delivery.priority > priority,
        )
        .values(priority=priority)
        .execution_options(synchronize_session="evaluate")
    )


def _owed(db_session: Session, order_key: str) -> list[Delivery]:
    """The deliveries pending under `order_key`, newest first, at most OWED_READ:
    usually none or one, read once for what a new one may fold into, lift and
    leave behind. A full read may not be all (a backlog while Slack is away)."""
    query = (
        select(Delivery)
        .where(Delivery.order_key == order_key, Delivery.status == PENDING)
        .order_by(Delivery.id.desc())
        .limit(OWED_READ)
    )
    return list(db_session.scalars(query))


def _if_unchanged(row: Delivery) -> Update:
    """An UPDATE of `row` that applies only while it is as it was read: pending,
    unclaimed, at the same version (else a worker or another transaction has it)."""
    return update(Delivery).where(
        Delivery.id == row.id,
        Delivery.version == row.version,
        Delivery.status == PENDING,
        Delivery.claimed_by.is_(None),
    )


def _replace_payload(
    db_session: Session,
    row: Delivery,
    payload: dict[str, Any],
    now: datetime,
    *,
    priority: int = BULK,
) -> bool:
    """Swap the payload of an unclaimed pending row; False if a worker got to it first.

    The row keeps the more urgent of its own priority and `priority`.
    """
    changed = update_rows(
        db_session,
        _if_unchanged(row).values(
            payload=payload,
            priority=_more_urgent(priority),
            version=Delivery.version + 1,
            updated_at=now,
        ),
    )
    if changed == 1:
        db_session.expire(row)
        return True
    return False


def _unclaimed_pending(db_session: Session, *criteria: Any) -> Delivery | None:
    query = (
        select(Delivery)
        .where(Delivery.status == PENDING, Delivery.claimed_by.is_(None), *criteria)
        .order_by(Delivery.id.desc())
        .limit(1)
    )
    return db_session.scalars(query).first()


def _add(db_session: Session, now: datetime, **values: Any) -> Delivery:
    values.setdefault("not_before", now)
    values.setdefault("first_due_at", values["not_before"])
    values.setdefault("attempts", 0)
    values.setdefault("version", 0)
    row = Delivery(status=PENDING, created_at=now, updated_at=now, **values)
    db_session.add(row)
    db_session.flush()
    return row


def slack_message(
    db_session: Session,
    *,
    key: str,
    channel: str,
    now: datetime,
    new_key: bool = False,
    parent_key: str | None = None,
) -> SlackMessage:
    """The Slack message the bot owns under `key`, created (not yet posted) if new.

    `new_key`: the caller made `key` in this transaction (a new incident's), so
    there is nothing to look up; the row is flushed with the next flush.
    `parent_key`: a new message is posted in the thread of the message under that
    key, once that one is posted (at the top level if it never is).
    """
    if not new_key:
        existing = db_session.scalars(select(SlackMessage).where(SlackMessage.key == key)).first()
        if existing is not None:
            return existing
    message = SlackMessage(key=key, channel=channel, created_at=now, parent_key=parent_key)
    db_session.add(message)
    if not new_key:
        db_session.flush()
    return message


def post_or_update(
    db_session: Session,
    *,
    key: str,
    channel: str,
    message: dict[str, Any],
    now: datetime,
    new_key: bool = False,
    priority: int = BULK,
    parent_key: str | None = None,
    in_turn_with: str | None = None,
) -> None:
    """Post the message under `key` the first time, update it in place afterwards.

    `new_key`: the caller made `key` in this transaction, so nothing was ever
    posted or queued under it (one SELECT fewer each for the message and its
    pending update). `priority`: PERSON when it shows the effect of a click.
    `parent_key`: a new message goes in that message's thread (see slack_message).
    `in_turn_with`: a name shared by messages, each under its own key, that reach
    Slack in the order they were queued (one at a time, a retry holding back those
    after it); by default a message keeps order with its own thread only.
    Updates not yet sent coalesce: only the latest render goes out.
    """
    owned = slack_message(
        db_session, key=key, channel=channel, now=now, new_key=new_key, parent_key=parent_key
    )
    _mark_dirty(db_session)
    order_key = f"slack:{in_turn_with or key}"
    ref = MessageRef(owned.key, owned.channel, owned.channel_id, owned.ts)
    pending = None
    at_once = False
    if not new_key:
        owed = _owed(db_session, order_key)
        _lift_earlier(db_session, order_key=order_key, priority=priority, owed=owed)
        pending = next(
            (
                row
                for row in owed
                if row.claimed_by is None and row.kind == SLACK_MESSAGE and row.message_key == key
            ),
            None,
        )
        at_once = _goes_at_once(owned, priority=priority, owed=owed, pending=pending)
        if (
            at_once
            and pending is not None
            and _claim_at_once(db_session, pending, message, ref, now=now)
        ):
            return
    if pending is not None:
        # A click's time stays with the update that shows its effect (click_to_effect).
        clicked_at = pending.payload.get(CLICKED_AT)
        if clicked_at and not message.get(CLICKED_AT):
            message = {**message, CLICKED_AT: clicked_at}
        if _replace_payload(db_session, pending, message, now, priority=priority):
            return
    _add_to_send(
        db_session,
        now,
        at_once=at_once and pending is None,
        kind=SLACK_MESSAGE,
        target=slack_target(channel),
        lane=SLACK_UPDATES,
        message=ref,
        order_key=order_key,
        message_key=key,
        payload=message,
        priority=priority,
    )


def _goes_at_once(
    owned: SlackMessage, *, priority: int, owed: list[Delivery], pending: Delivery | None
) -> bool:
    """A click's effect on a posted message with nothing of it on its way (at most
    the unclaimed update it replaces): it may leave right after the commit."""
    if priority != PERSON or owned.ts is None or owned.channel_id is None:
        return False
    return len(owed) == (0 if pending is None else 1)


def _claim_at_once(
    db_session: Session, row: Delivery, payload: dict[str, Any], ref: MessageRef, *, now: datetime
) -> bool:
    """Put `payload` in the unclaimed update `row` and claim it for sending after the
    commit (bot/outbox/express.py); False when that may not be (the caller folds)."""
    lease = _express_lease(
        db_session, kind=SLACK_MESSAGE, lane=SLACK_UPDATES, order_key=row.order_key, now=now
    )
    if lease is None:
        return False
    claimant, lease_until = lease
    claimed = update_rows(
        db_session,
        _if_unchanged(row)
        # Not one waiting out a backoff after a failed attempt.
        .where(Delivery.not_before <= now)
        .values(
            payload=payload,
            priority=PERSON,
            claimed_by=claimant.instance_id,
            claimed_until=lease_until,
            attempts=Delivery.attempts + 1,
            version=Delivery.version + 1,
            updated_at=now,
        ),
    )
    if claimed != 1:
        return False
    job = Job(
        row.id,
        SLACK_MESSAGE,
        row.target,
        dict(payload),
        row.attempts + 1,
        ref,
        created_at=now,
        lane=SLACK_UPDATES,
    )
    express.note_claimed(db_session, job, row.order_key)
    db_session.expire(row)
    return True


def reply_in_thread(
    db_session: Session,
    *,
    key: str,
    channel: str,
    fold_key: str | None,
    item: dict[str, Any],
    render: RenderItems,
    now: datetime,
    priority: int = BULK,
    hold_s: float = 0.0,
) -> None:
    """A threaded reply under the message `key`.

    Unsent replies with the same `fold_key` merge into one; None never folds.
    `hold_s`: a new reply waits this long for more items to fold into it (the
    wait is a `not_before` in the outbox, so a restart keeps it).
    """
    slack_message(db_session, key=key, channel=channel, now=now)
    _mark_dirty(db_session)
    order_key = f"slack:{key}"
    _lift_earlier(db_session, order_key=order_key, priority=priority)
    pending = None
    if fold_key is not None:
        pending = _unclaimed_pending(
            db_session, Delivery.kind == SLACK_REPLY, Delivery.fold_key == fold_key
        )
    if pending is not None:
        payload = _folded(pending.payload, item, render)
        if _replace_payload(db_session, pending, payload, now, priority=priority):
            return
    _add(
        db_session,
        now,
        kind=SLACK_REPLY,
        target=slack_target(channel),
        order_key=order_key,
        message_key=key,
        fold_key=fold_key,
        payload={**render([item]), "items": [item]},
        priority=priority,
        not_before=now + timedelta(seconds=hold_s),
    )


def _folded(held: dict[str, Any], item: dict[str, Any], render: RenderItems) -> dict[str, Any]:
    """The payload of a held reply with `item` folded in: its first and last items kept,
    those between counted in `earlier`, the whole rendered."""
    items = [*held.get("items", []), item]
    earlier = int(held.get("earlier", 0))
    dropped = len(items) - FOLD_KEEPS_FIRST - FOLD_KEEPS_LAST
    if dropped > 0:
        items = items[:FOLD_KEEPS_FIRST] + items[FOLD_KEEPS_FIRST + dropped :]
        earlier += dropped
    if not earlier:
        return {**render(items), "items": items}
    # Renderers count and list from the whole run: those left out stand in as empty
    # items, which none of them shows.
    run = [*items[:FOLD_KEEPS_FIRST], *([{}] * earlier), *items[FOLD_KEEPS_FIRST:]]
    return {**render(run), "items": items, "earlier": earlier}


def respond(
    db_session: Session, *, response_url: str, body: dict[str, Any], order_key: str, now: datetime
) -> None:
    """Answer a slash command or button through its response_url, after the commit.

    Someone is waiting for it: it goes in the PERSON lane.
    """
    _add_to_send(
        db_session,
        now,
        at_once=_newest_pending(db_session, order_key) is None,
        kind=SLACK_RESPONSE,
        target=SLACK_RESPONSE_TARGET,
        order_key=order_key,
        payload={"response_url": response_url, "body": body},
        priority=PERSON,
    )


def pagerduty_event(
    db_session: Session,
    *,
    routing_key_env: str,
    dedup_key: str,
    action: str,
    body: dict[str, Any],
    now: datetime,
    not_before: datetime | None = None,
    new_key: bool = False,
) -> None:
    """An Events API v2 event (trigger, acknowledge or resolve) for `dedup_key`.

    `new_key`: the caller made `dedup_key` in this transaction, so no event of it
    is pending (one SELECT fewer on a new incident's first page).
    """
    order_key = f"pd:{dedup_key}"
    payload = {"action": action, "dedup_key": dedup_key, "routing_key_env": routing_key_env, **body}
    # Only the oldest pending event of a dedup_key is ever claimed, so when the
    # newest is unclaimed it may still be folded into.
    pending = None if new_key else _newest_pending(db_session, order_key)
    if (
        pending is not None
        and pending.claimed_by is None
        and pending.payload.get("action") == action
        and _replace_payload(db_session, pending, payload, now)
    ):
        _mark_dirty(db_session)
        return
    _add_to_send(
        db_session,
        now,
        at_once=action == "trigger" and not_before is None and pending is None,
        kind=PAGERDUTY_EVENT,
        target=pagerduty_target(routing_key_env),
        order_key=order_key,
        payload=payload,
        not_before=not_before or now,
    )


def _newest_pending(db_session: Session, order_key: str) -> Delivery | None:
    query = (
        select(Delivery)
        .where(Delivery.order_key == order_key, Delivery.status == PENDING)
        .order_by(Delivery.id.desc())
        .limit(1)
    )
    return db_session.scalars(query).first()


def _add_to_send(
    db_session: Session,
    now: datetime,
    *,
    at_once: bool,
    kind: str,
    target: str,
    order_key: str,
    lane: str | None = None,
    message: MessageRef | None = None,
    **values: Any,
) -> None:
    """Add a delivery: claimed for sending straight after the commit
    (bot/outbox/express.py) when the caller says it may go `at_once` (nothing
    pending before it under its order key), this session has a claimant and its
    `lane` (by default its target) is not being paced; else for the worker,
    woken after the commit. `message`: the Slack message it posts or updates."""
    lease = (
        _express_lease(db_session, kind=kind, lane=lane or target, order_key=order_key, now=now)
        if at_once
        else None
    )
    if lease is None:
        _mark_dirty(db_session)
        _add(db_session, now, kind=kind, target=target, order_key=order_key, **values)
        return
    claimant, lease_until = lease
    row = _add(
        db_session,
        now,
        kind=kind,
        target=target,
        order_key=order_key,
        claimed_by=claimant.instance_id,
        claimed_until=lease_until,
        attempts=1,
        version=1,
        **values,
    )
    job = Job(
        row.id, kind, target, dict(row.payload), row.attempts, message, created_at=now, lane=lane
    )
    express.note_claimed(db_session, job, order_key)


def _express_lease(
    db_session: Session, *, kind: str, lane: str, order_key: str, now: datetime
) -> tuple[express.Claimant, datetime] | None:
    """This session's claimant and the end of its lease on a delivery of `kind` under
    `order_key` in `lane`, or None: the delivery waits for the worker."""
    claimant = express.claimant_of(db_session)
    if claimant is None:
        return None
    lease_until = claimant.lease_until(kind=kind, target=lane, order_key=order_key, now=now)
    return None if lease_until is None else (claimant, lease_until)


def cancel_pagerduty_event(
    db_session: Session, *, dedup_key: str, action: str, now: datetime
) -> bool:
    """Withdraw an event never tried; False if there was none, a worker has it, or
    an attempt was made: PagerDuty may have applied it though its answer was lost.

    An event left in place keeps its turn: whatever the caller sends next under
    `dedup_key` goes out after it, whichever way its attempt went.
    """
    pending = _unclaimed_pending(db_session, Delivery.order_key == f"pd:{dedup_key}")
    if pending is None or pending.payload.get("action") != action:
        return False
    if pending.attempts > 0:
        log.info(
            "delivery %s: the %s for %s was tried already (%s); not withdrawn",
            pending.id,
            action,
            dedup_key,
            (pending.last_error or "")[:200],
            extra={"delivery": pending.id, "dedup_key": dedup_key, "attempts": pending.attempts},
        )
        return False
    changed = update_rows(
        db_session,
        _if_unchanged(pending).values(
            status=CANCELLED, version=Delivery.version + 1, updated_at=now
        ),
    )
    return changed == 1


def summary(db_session: Session) -> list[tuple[str, str, int]]:
    """(kind, status, count) over the whole outbox."""
    query = (
        select(Delivery.kind, Delivery.status, func.count())
        .group_by(Delivery.kind, Delivery.status)
        .order_by(Delivery.kind, Delivery.status)
    )
    return [(kind, status, int(count)) for kind, status, count in db_session.execute(query)]


def dead(db_session: Session, *, limit: int = 50) -> list[Delivery]:
    query = (
        select(Delivery).where(Delivery.status == DEAD).order_by(Delivery.id.desc()).limit(limit)
    )
    return list(db_session.scalars(query))


@dataclass(frozen=True)
class Obsolete:
    """An abandoned delivery not sent again: a newer one under its order key made it
    pointless, or it was a person's call and that person was told it failed."""

    delivery_id: int
    newer_id: int | None  # None: a person's call, told to its person
    cancelled: bool  # else it stays abandoned
    note: str  # why, for the person who asked for it again


@dataclass(frozen=True)
class Revival:
    revived: list[int]
    obsolete: list[Obsolete]


def revive_dead(db_session: Session, *, now: datetime, delivery_id: int | None = None) -> Revival:
    """Put abandoned deliveries back in line, after the cause was fixed.

    Each keeps its place under its order key, and the sign that it was tried
    (`attempts` 1, never 0): its sender still looks for an earlier attempt that
    landed before sending again. One that a newer delivery made obsolete is not
    sent: an update of a Slack message that a newer one replaced is cancelled
    (it would put an older state back); a PagerDuty event followed by a newer
    one of its dedup_key, sent, on its way or abandoned too, stays abandoned:
    only the newest says what the alarm is now, and an older one sent alone
    would undo it (a trigger after its resolve opens an incident nothing
    resolves; a resolve after a re-ALARM's page closes it). Retrying every
    abandoned delivery puts the newest back and leaves the older; retrying one
    that a newer abandoned one makes obsolete puts back neither. A person's call on a
    PagerDuty incident is never sent again: that person was told it failed, and
    it would act in their name now, unasked; it is cancelled (they click again).
    """
    query = select(Delivery).where(Delivery.status == DEAD).order_by(Delivery.id.desc())
    if delivery_id is not None:
        query = query.where(Delivery.id == delivery_id)
    revived: list[int] = []
    obsolete: list[Obsolete] = []
    # Newest first: a newer one revived here makes the older ones of its message obsolete.
    for row in list(db_session.scalars(query)):
        if is_persons_call(row.kind, row.payload):
            if _cancel_dead(db_session, row, now):
                obsolete.append(_told(row))
            continue
        newer = _newer_than(db_session, row)
        if newer is None:
            if _revive(db_session, row, now):
                revived.append(row.id)
            continue
        found = _obsolete(row, newer)
        if found.cancelled and not _cancel_dead(db_session, row, now):
            continue  # another retry got to it first
        log.info(
            "delivery %s not sent again: %s",
            row.id,
            found.note,
            extra={"delivery": row.id, "kind": row.kind, "newer_delivery": newer.id},
        )
        obsolete.append(found)
    if revived:
        _mark_dirty(db_session)
    return Revival(revived=revived, obsolete=obsolete)


def _newer_than(db_session: Session, row: Delivery) -> Delivery | None:
    """The newest delivery that makes the abandoned `row` obsolete, if any: a newer
    state of its Slack message (sent, or on its way), or a newer PagerDuty event of
    its dedup_key that was not withdrawn (sent, tried and on its way, or abandoned too).

    A newer event never tried yet does not count: it may still be withdrawn (a resolve
    held for the reopen window, whose alarm fires again), and it goes out after the
    revived one anyway."""
    if row.kind == SLACK_MESSAGE:
        criteria = [
            Delivery.kind == SLACK_MESSAGE,
            Delivery.message_key == row.message_key,
            Delivery.status.in_([SENT, PENDING]),
        ]
    elif row.kind == PAGERDUTY_EVENT:
        criteria = [
            Delivery.kind == PAGERDUTY_EVENT,
            or_(
                Delivery.status.in_([SENT, DEAD]),
                and_(Delivery.status == PENDING, Delivery.attempts > 0),
            ),
        ]
    else:
        return None
    query = (
        select(Delivery)
        .where(Delivery.order_key == row.order_key, Delivery.id > row.id, *criteria)
        .order_by(Delivery.id.desc())
        .limit(1)
    )
    return db_session.scalars(query).first()


def _told(row: Delivery) -> Obsolete:
    """A person's call given up and told to them, cancelled rather than sent again."""
    payload = row.payload
    who, action = payload.get("actor") or "its person", payload.get("action")
    note = (
        f"delivery #{row.id} ({who}'s {action} of incident #{payload.get('incident_id')} "
        f"in PagerDuty) is cancelled, not sent again: {who} was told it failed "
        f"({(row.last_error or 'no answer')[:200]}), and clicks again if it is still wanted"
    )
    log.info(
        "delivery %s not sent again: a person's call, told to them as failed",
        row.id,
        extra={
            "delivery": row.id,
            "kind": row.kind,
            "incident": payload.get("incident_id"),
            "slack_user": payload.get("actor_id"),
        },
    )
    return Obsolete(row.id, None, cancelled=True, note=note)


def _obsolete(row: Delivery, newer: Delivery) -> Obsolete:
    if row.kind == SLACK_MESSAGE:
        went = "went out after it" if newer.status == SENT else "is on its way"
        note = (
            f"delivery #{row.id} (an older state of Slack message {row.message_key}) is "
            f"cancelled: #{newer.id}, a newer state, {went}, and it would put the older back"
        )
        return Obsolete(row.id, newer.id, cancelled=True, note=note)
    action, newer_action = row.payload.get("action"), newer.payload.get("action")
    dedup_key = row.payload.get("dedup_key")
    went = {
        SENT: "went out after it",
        PENDING: "was tried after it and is on its way",
    }.get(newer.status, f"came after it and is abandoned too (retry #{newer.id} to send that)")
    note = (
        f"delivery #{row.id} (PagerDuty {action} of {dedup_key}) stays abandoned: "
        f"#{newer.id} ({newer_action}) {went}, and PagerDuty applies events in the order "
        "they come: only the newest says what the alarm is now (a trigger after its "
        "resolve opens an incident nothing resolves)"
    )
    return Obsolete(row.id, newer.id, cancelled=False, note=note)


def _revive(db_session: Session, row: Delivery, now: datetime) -> bool:
    tried = case((Delivery.attempts > 0, 1), else_=0)
    changed = update_rows(
        db_session,
        update(Delivery)
        .where(Delivery.id == row.id, Delivery.status == DEAD)
        .values(
            status=PENDING,
            attempts=tried,
            not_before=now,
            # Due again from now on: the hours it lay abandoned are not a wait.
            first_due_at=now,
            version=Delivery.version + 1,
            updated_at=now,
        ),
    )
    return changed == 1


def _cancel_dead(db_session: Session, row: Delivery, now: datetime) -> bool:
    changed = update_rows(
        db_session,
        update(Delivery)
        .where(Delivery.id == row.id, Delivery.status == DEAD)
        .values(status=CANCELLED, version=Delivery.version + 1, updated_at=now),
    )
    return changed == 1


def pagerduty_rest(
    db_session: Session,
    *,
    order_key: str,
    payload: dict[str, Any],
    now: datetime,
    priority: int = BULK,
) -> None:
    """A PagerDuty REST call, sent in order with others under the same `order_key`.

    Its sender records the outcome itself, together with `complete`.
    `priority`: PERSON when someone asked for it and waits for the effect: then,
    with nothing before it under `order_key`, it leaves right after the commit
    (bot/outbox/express.py), within the REST token's pace like any other.
    """
    # Only a person's call looks at what is owed: it may lift it, or leave at once.
    owed = _owed(db_session, order_key) if priority == PERSON else None
    _lift_earlier(db_session, order_key=order_key, priority=priority, owed=owed)
    _add_to_send(
        db_session,
        now,
        at_once=owed is not None and not owed,
        kind=PAGERDUTY_REST,
        target=PAGERDUTY_REST_TARGET,
        order_key=order_key,
        payload=payload,
        priority=priority,
    )


def amend_payload(
    db_session: Session, *, delivery_id: int, values: dict[str, Any], now: datetime
) -> None:
    """Add `values` to a pending delivery's payload: what its next attempts must reuse."""
    row = db_session.get(Delivery, delivery_id)
    if row is None or row.status != PENDING:
        return
    row.payload = {**row.payload, **values}
    row.updated_at = now


def pending_payloads(db_session: Session, *, kind: str, order_key: str) -> list[dict[str, Any]]:
    """Payloads of the deliveries still to go out under `order_key`, oldest first."""
    query = (
        select(Delivery.payload)
        .where(Delivery.kind == kind, Delivery.order_key == order_key, Delivery.status == PENDING)
        .order_by(Delivery.id)
    )
    return list(db_session.scalars(query))


def complete(
    db_session: Session, *, delivery_id: int, status: str, error: str | None, now: datetime
) -> bool:
    """Close a claimed delivery in the transaction that records its outcome, its
    claim released: a crash after the commit cannot make it run twice, and a
    sender that says so (`Sent(recorded=True)`) leaves the worker nothing to write.

    False when it was closed already (another instance took it over when its
    lease ran out, and recorded it first): the caller rolls its record back.
    """
    values: dict[str, Any] = {
        "status": status,
        "last_error": error,
        "updated_at": now,
        "claimed_by": None,
        "claimed_until": None,
    }
    if status == SENT:
        values["sent_at"] = now
    closed = update_rows(
        db_session,
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status == PENDING)
        .values(**values),
    )
    return closed == 1


def last_pagerduty_event(db_session: Session, *, dedup_key: str) -> Delivery | None:
    """The newest Events API event for `dedup_key` that is sent or still to go."""
    query = (
        select(Delivery)
        .where(
            Delivery.kind == PAGERDUTY_EVENT,
            Delivery.order_key == f"pd:{dedup_key}",
            Delivery.status.in_([PENDING, SENT]),
        )
        .order_by(Delivery.id.desc())
        .limit(1)
    )
    return db_session.scalars(query).first()
