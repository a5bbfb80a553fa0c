"""What an alarm's transition shows in Slack, so that a storm reads like one event.

Each incident has one message, updated in place to its current state, and its
transitions within `alarms.fold_window_s` fold into one thread reply held in the
outbox until the window ends (a restart keeps it). When more than
`alarms.group_above` alarms open on one route and channel within
`alarms.group_window_s`, they are listed in one parent message in that channel,
updated in place, and each new one's own
message (its incident, page and buttons unchanged) is posted in that parent's
thread, where its transitions show in place rather than as replies: the channel
gets one post for the storm and one a second at most for its alarms.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from bot.alarms.models import AlarmGroup, AlarmGroupMember
from bot.alarms.render import GroupLine, group_message
from bot.config import Config
from bot.db.statements import update_rows
from bot.incidents import flows
from bot.incidents.models import ALARM, OPEN, Incident
from bot.outbox import service as outbox
from bot.outbox.models import BULK, LATER

log = logging.getLogger(__name__)


def show(
    db_session: Session,
    *,
    incident: Incident,
    created: bool,
    transition: dict[str, Any] | None,
    config: Config,
    now: datetime,
) -> None:
    """Post or update the incident's message, fold `transition` into its thread, and
    list it in its route's group (forming one when this alarm is one too many)."""
    if created:
        group, threaded = _join_group(db_session, incident=incident, config=config, now=now)
        if group is not None and group.opened_at == now:
            sync_group(db_session, group=group, now=now)  # its post goes before its members'
        elif group is not None:
            _sync_at_commit(db_session, group=group, now=now)
    else:
        group, threaded = _group_of(db_session, incident=incident)
    flows.sync_message(
        db_session,
        incident=incident,
        now=now,
        new=created,
        thread_of=group.message_key if group is not None and created and threaded else None,
        # Its group's message shows its state: under Slack's update tier, that one first.
        priority=LATER if threaded and not created else BULK,
    )
    if transition is not None and not threaded:
        flows.thread_transition(
            db_session,
            incident=incident,
            item=transition,
            now=now,
            hold_s=config.alarms.fold_window_s,
        )
    if group is not None and not created:
        _sync_at_commit(db_session, group=group, now=now)


# Groups whose message must show a change made in this transaction: rendered once,
# just before it commits, however many of their alarms it changed (a batch of
# notifications in one transaction, a storm).
GROUPS_TO_SYNC = "alarm_groups_to_sync"
GROUPS_JOINED = "alarm_groups_joined"
GROUPS_HOOKED = "alarm_groups_hooked"


def _sync_at_commit(
    db_session: Session, *, group: AlarmGroup, now: datetime, joined: bool = False
) -> None:
    db_session.info.setdefault(GROUPS_TO_SYNC, {})[group.id] = now
    if joined:
        db_session.info.setdefault(GROUPS_JOINED, {})[group.id] = now
    if not db_session.info.get(GROUPS_HOOKED):
        db_session.info[GROUPS_HOOKED] = True
        event.listen(db_session, "before_commit", _sync_marked)


def _sync_marked(db_session: Session) -> None:
    """Render the marked groups' messages, each under its row's lock.

    Two transactions that change alarms of one group (two people acknowledging at
    once, a click during a storm's batch) would each render it without the other's
    change, and the later commit would leave a stale line for good. Locked, the
    second renders after the first commits, and sees its change. The lock is taken
    last (joining a group stamps it here, not on joining), in id order, and is
    PostgreSQL's FOR NO KEY UPDATE: renders wait for each other, but not for the
    KEY SHARE that adding a member takes on the group by its foreign key, so two
    alarms joining at once, or a click during a batch that joined, close no cycle.
    Only closing a quiet group locks its row earlier, and PostgreSQL breaks the
    rare cycle that makes (a click on that group's alarm, in the same instant as a
    batch that both closes it and changes that alarm) by failing one of the two.
    """
    marked: dict[int, datetime] = db_session.info.pop(GROUPS_TO_SYNC, {})
    joined: dict[int, datetime] = db_session.info.pop(GROUPS_JOINED, {})
    if not marked:
        return
    groups = db_session.scalars(
        select(AlarmGroup)
        .where(AlarmGroup.id.in_(sorted(marked)))
        .order_by(AlarmGroup.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).all()
    for group in groups:  # a group rolled back since it was marked is not found
        if group.id in joined:
            group.last_joined_at = max(group.last_joined_at, joined[group.id])
        sync_group(db_session, group=group, now=marked[group.id])


def _last_joined(db_session: Session, group: AlarmGroup) -> datetime:
    """When an alarm last joined `group`, counting those joined in this transaction."""
    joined: dict[int, datetime] = db_session.info.get(GROUPS_JOINED, {})
    stamped = joined.get(group.id)
    return group.last_joined_at if stamped is None else max(group.last_joined_at, stamped)


def show_in_group(db_session: Session, *, incident: Incident, now: datetime) -> None:
    """A grouped alarm's incident was acknowledged, resolved or reopened (by a person or in
    PagerDuty): its group's message shows it too, rendered once at commit with whatever
    else changed its lines, and coalesced in the outbox with the group's update still owed."""
    if incident.source != ALARM:
        return
    group, _threaded = _group_of(db_session, incident=incident)
    if group is not None:
        _sync_at_commit(db_session, group=group, now=now)


def _group_of(db_session: Session, *, incident: Incident) -> tuple[AlarmGroup | None, bool]:
    row = db_session.execute(
        select(AlarmGroup, AlarmGroupMember.threaded)
        .join(AlarmGroupMember, AlarmGroupMember.group_id == AlarmGroup.id)
        .where(AlarmGroupMember.incident_id == incident.id)
    ).first()
    if row is None:
        return None, False
    return row[0], bool(row[1])


def _join_group(
    db_session: Session, *, incident: Incident, config: Config, now: datetime
) -> tuple[AlarmGroup | None, bool]:
    """The group a new alarm incident joins, if any, and whether its message is in its
    thread. Groups are kept per route and channel: routes may share a name and post to
    different channels, and a message is threaded only under a parent in its own
    channel. The open group of the incident's route and channel takes it while its
    last member joined within the window; else, when more than `group_above` alarms
    opened there within the window, a new group lists them all (those already posted
    stay where they are).
    """
    above = config.alarms.group_above
    if above <= 0 or incident.source != ALARM:
        return None, False
    since = now - timedelta(seconds=config.alarms.group_window_s)
    group = db_session.scalars(
        select(AlarmGroup).where(
            AlarmGroup.route_name == incident.route_name,
            AlarmGroup.channel == incident.channel,
            AlarmGroup.closed_at.is_(None),
        )
    ).first()
    if group is not None and _last_joined(db_session, group) >= since:
        _add_member(db_session, group=group, incident_id=incident.id, threaded=True, now=now)
        _sync_at_commit(db_session, group=group, now=now, joined=True)
        return group, True
    grouped = select(AlarmGroupMember.incident_id)
    recent = list(
        db_session.scalars(
            select(Incident.id)
            .where(
                Incident.route_name == incident.route_name,
                Incident.channel == incident.channel,
                Incident.source == ALARM,
                Incident.opened_at >= since,
                Incident.id != incident.id,
                Incident.id.not_in(grouped),
            )
            .order_by(Incident.id)
        )
    )
    forming = len(recent) + 1 > above
    if forming:
        _lock_for_listing(db_session, incident_ids=recent)
    if group is not None:
        # Quiet for a window: the next storm here gets a parent of its own. Closed after
        # the members are locked, so that this transaction holds no group's row while it
        # waits for theirs (a batch changing one of them may lock this group at commit).
        update_rows(
            db_session,
            update(AlarmGroup)
            .where(AlarmGroup.id == group.id, AlarmGroup.closed_at.is_(None))
            .values(closed_at=now),
        )
        db_session.expire(group)
    if not forming:
        return None, False
    group = AlarmGroup(
        route_name=incident.route_name, channel=incident.channel, opened_at=now, last_joined_at=now
    )
    db_session.add(group)
    db_session.flush()
    for incident_id in recent:
        _add_member(db_session, group=group, incident_id=incident_id, threaded=False, now=now)
    _add_member(db_session, group=group, incident_id=incident.id, threaded=True, now=now)
    log.info(
        "alarm group %s formed on route %s in %s with %d alarms",
        group.id,
        incident.route_name,
        incident.channel,
        len(recent) + 1,
        extra={
            "group": group.id,
            "route": incident.route_name,
            "channel": incident.channel,
            "incident": incident.id,
        },
    )
    return group, True


def _lock_for_listing(db_session: Session, *, incident_ids: list[int]) -> None:
    """Lock the incidents a group forming now lists, before its first render reads them.

    Until the group commits, a transaction changing one of them cannot find it, and
    marks nothing to render again: the group's first listing must already show that
    change. The key share lock that adding a member takes waits only for a FOR UPDATE
    lock; this one (PostgreSQL's FOR NO KEY UPDATE) waits for any UPDATE of their rows:
    a change in flight commits before the render reads, and one that comes later waits
    for this commit, after which it finds the group. In id order, so
    two transactions locking some of the same incidents queue rather than deadlock.
    """
    if incident_ids:
        db_session.execute(
            select(Incident.id)
            .where(Incident.id.in_(incident_ids))
            .order_by(Incident.id)
            .with_for_update(key_share=True)
        )


def _add_member(
    db_session: Session, *, group: AlarmGroup, incident_id: int, threaded: bool, now: datetime
) -> None:
    db_session.add(
        AlarmGroupMember(
            group_id=group.id, incident_id=incident_id, threaded=threaded, joined_at=now
        )
    )


def sync_group(db_session: Session, *, group: AlarmGroup, now: datetime) -> None:
    """Post the group's message, or update it in place, listing its alarms as they are now.

    Its pending update coalesces with the next: one `chat.update` for many transitions.
    """
    db_session.flush()
    rows = db_session.execute(
        select(
            Incident.id,
            Incident.title,
            Incident.alarm_state,
            Incident.status,
            Incident.acknowledged_by,
            AlarmGroupMember.threaded,
        )
        .join(AlarmGroupMember, AlarmGroupMember.incident_id == Incident.id)
        .where(AlarmGroupMember.group_id == group.id)
        .order_by(AlarmGroupMember.id)
    ).all()
    lines = [
        GroupLine(
            incident_id=incident_id,
            title=title,
            state=state or "ALARM",
            is_open=status == OPEN,
            acknowledged_by=acknowledged_by,
            threaded=bool(threaded),
        )
        for incident_id, title, state, status, acknowledged_by, threaded in rows
    ]
    outbox.post_or_update(
        db_session,
        key=group.message_key,
        channel=group.channel,
        message=group_message(route_name=group.route_name, opened_at=group.opened_at, lines=lines),
        now=now,
    )
