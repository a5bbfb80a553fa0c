"""An incident's own Slack channel: started by `/incident declare` or the Start a channel button.

`IncidentChannels.start` is the one entry, whatever the door: it checks the
`respond` right on the incident's route (bot/rights), claims the incident under
its lock so that a double click makes one channel (the incident row holds the
claim, then the channel), creates the channel (private when the incident's
channel is; a name Slack says is taken gets `-2`, `-3`, …) and holds it on the
incident at once, invites the responders and who is on call, posts and pins a
copy of the incident message and records the setup as done. A start that
stopped midway (its instance died) holds the claim until it is `CLAIM_S` old;
the next start then finishes the setup in the channel already made, so a crash
never leaves a second channel beside an orphan, nor a second summary: the summary
carries the incident in its metadata, and a start that finishes another's looks
for it in the channel before posting. When Slack's answer to `conversations.create`
is lost (a timeout, a broken connection, a 5xx: it may have made the channel), the
name tried stays on the incident, and the next start adopts the channel of that
exact name when Slack says it is taken and opsbot is in it, rather than making
`-2` beside it. The claim is the time it was taken: a
start that was only slow, not dead, finds another's claim in its place at its
next step and stops there (a channel it made meanwhile is archived), so the two
never both set the channel up. From then on the outbox keeps that
copy in step and shows every timeline event there (bot/incidents/flows.py:
follow_in_channel), and a resolve posts the postmortem draft. An incident
reopened after its channel was archived has no live channel: a bot token cannot
unarchive one (Slack's conversations.unarchive takes a user token), so a start
makes a new channel, and the archived one keeps its history.

Creating, inviting and pinning are calls a person waits for and must hear the
outcome of, so they are made here, behind the ack; what follows goes through
the outbox. When Slack refuses (a missing scope, any error), the person is told
why in plain words and the incident goes on in its thread.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.audit import service as audit
from bot.clock import Clock
from bot.config import Config
from bot.incidents import flows, render
from bot.incidents import service as incidents
from bot.incidents.actions import SLACK_USER, IncidentActions, Requester, respond
from bot.incidents.errors import IncidentError
from bot.incidents.models import Incident
from bot.outbox.models import CANCELLED, PENDING, Delivery, SlackMessage
from bot.rights.errors import SlackFactsUnavailable
from bot.rights.service import RESPOND_RIGHT
from bot.slack_dates import slack_date
from bot.slack_metadata import carries, marked
from bot.slack_text import code, keep_mentions

log = logging.getLogger(__name__)

START = "start_channel"
NAME_MAX = 80  # Slack's limit on a channel name
MAX_SUFFIX = 9  # name, name-2 … name-9, then give up
CLAIM_S = 120.0  # a start that never finished (a crash) stops blocking the next after this
TOPIC_MAX = 250
SUMMARY_EVENT = "opsbot_channel_summary"  # the metadata that marks a channel's summary
INCIDENT_REF = re.compile(r"^#?[A-Za-z0-9]+$")  # opsbot's number or PagerDuty's id
LIST_PAGES = 50  # conversations.list pages read to find a channel to adopt (200 a page)

# Who is on call now for a team (Slack user ids); the composition root binds it to
# bot/oncall (a domain above this one). It may raise: the channel starts without them.
OnCallFinder = Callable[[str], list[str]]


def slug(text: str) -> str:
    """`text` as Slack allows in a channel name: lowercase a-z, 0-9 and single dashes."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def channel_name(pattern: str, incident: Incident, *, suffix: int = 1) -> str:
    """The channel's name from the configured pattern, within Slack's rules and 80 characters."""
    name = pattern.format(
        number=incident.id,
        slug=slug(incident.title),
        route=slug(incident.route_name),
        severity=slug(incident.severity),
    )
    name = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9_-]", "-", name.lower())).strip("-_")
    tail = f"-{suffix}" if suffix > 1 else ""
    name = name[: NAME_MAX - len(tail)].rstrip("-_") + tail
    return name or f"inc-{incident.id}{tail}"


def _why(error: str, needed: str | None) -> str:
    """What a person reads when Slack refuses to make the channel."""
    if error == "missing_scope":
        scope = f" `{needed}`" if needed else ""
        return (
            f"opsbot's Slack app lacks the{scope} permission (scope) needed to create and "
            "manage channels. A Slack admin must add it to the app and reinstall it "
            "(docs/security.md lists the scopes)."
        )
    if error in ("restricted_action", "no_permission"):
        return "this workspace's settings do not let opsbot create channels."
    if error == "name_taken":
        return "every name tried was taken."
    return f"Slack answered {code(error)}."


class ChannelRefused(Exception):
    """Slack refused to make the channel; the message says why, in plain words.

    `tried`: the name whose `conversations.create` got no answer, so Slack may have
    made that channel; None when Slack answered, or nothing reached it.
    """

    def __init__(self, message: str, *, tried: str | None = None) -> None:
        super().__init__(message)
        self.tried = tried


def _nothing_sent(exc: OSError) -> bool:
    """Whether the call failed before it could reach Slack (bot/adapters/slack.py)."""
    return isinstance(exc, URLError) and isinstance(exc.reason, ConnectionRefusedError)


class IncidentChannels:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        slack: WebClient | None,
        actions: IncidentActions,
        config: Config,
        clock: Clock,
        oncall: OnCallFinder | None = None,
        count: Callable[[str], None] = lambda _outcome: None,
    ) -> None:
        self.sessions = sessions
        self.slack = slack
        self.actions = actions
        self.config = config
        self.clock = clock
        self.oncall = oncall
        self.count = count  # opsbot_incident_channels_total{outcome}

    def incident_of_channel(self, channel_id: str) -> int | None:
        """The incident whose own channel `channel_id` is, if any."""
        with self.sessions() as db_session:
            found = incidents.get_by_slack_channel(db_session, slack_channel_id=channel_id)
            return found.id if found is not None else None

    def note_target(self, words: list[str], *, channel_id: str | None) -> tuple[int, str]:
        """`/incident note WORDS` typed in `channel_id`: the incident it is for, and its text.

        In an incident's own channel the number may be left out; a leading number is
        taken as the incident's only when it is that incident's (`note 42 …` in
        #inc-42-…), else it is part of the note. Elsewhere the number is needed.
        """
        own = self.incident_of_channel(channel_id) if channel_id else None
        if own is not None:
            if len(words) > 1 and words[0].removeprefix("#") == str(own):
                words = words[1:]
            return own, " ".join(words)
        if not INCIDENT_REF.match(words[0]):
            raise IncidentError(f"{code(words[0])} is not an incident number, e.g. `42`.")
        text = " ".join(words[1:]).strip()
        if not text:
            raise IncidentError(
                "`note` needs an incident number and the text of the note "
                "(in an incident's own channel, the text alone)."
            )
        return self.actions.find_id(words[0]), text

    def after_declare(self, *, incident_id: int, requester: Requester) -> None:
        """`/incident declare` starts the channel when the incident's route says so."""
        with self.sessions() as db_session:
            incident = incidents.get_or_raise(db_session, incident_id=incident_id)
            route_name = incident.route_name
        if self.config.creates_incident_channel(route_name):
            self.start(incident_id=incident_id, requester=requester)

    def start(self, *, incident_id: int, requester: Requester) -> None:
        """Start the incident's channel as `requester`; they are told how it went."""
        with self.sessions() as db_session:
            seen = incidents.get(db_session, incident_id=incident_id)
        if seen is None:
            self.actions.refuse(
                incident=incident_id,
                action=START,
                requester=requester,
                why=f"There is no incident #{incident_id}.",
            )
            return
        why_not = self.actions.missing_right(
            seen, requester, right=RESPOND_RIGHT, doing="start a channel for"
        )
        if why_not is not None:
            self.count("refused")
            self.actions.refuse(incident=seen, action=START, requester=requester, why=why_not)
            return
        if self.slack is None:
            self.count("no_token")
            why = "opsbot has no Slack token (SLACK_BOT_TOKEN), so it cannot create channels."
            self.actions.refuse(incident=seen, action=START, requester=requester, why=why)
            return
        # Read before the lock (and cached since the rights check): Slack is not waited on there.
        shows_channel = self.actions.sees(seen, requester)
        now = self.clock.now()
        with self.sessions() as db_session:
            incident = incidents.lock(db_session, incident_id=incident_id)
            assert incident is not None
            taken = self._claim(incident, requester=requester, now=now, shows_channel=shows_channel)
            made = incident.slack_channel_id, incident.slack_channel_name
            db_session.commit()
        if taken is not None:
            self.count("already")
            self.actions.refuse(incident=incident, action=START, requester=requester, why=taken)
            return
        claim = now
        channel_id, name = made
        if channel_id is not None:
            # A start that stopped after Slack made the channel (a crash) is finished there.
            name = name or channel_id
            log.info(
                "incident %s: finishing the setup of %s, left unfinished",
                incident_id,
                channel_id,
                extra={"incident": incident_id, "slack_channel": channel_id},
            )
        else:
            # A name left by a start whose create went unanswered: Slack may have made it.
            try:
                channel_id, name = self._create(incident, tried=made[1])
            except ChannelRefused as exc:
                self.count("failed" if exc.tried is None else "unanswered")
                self._failed(incident_id, claim, requester=requester, why=str(exc), tried=exc.tried)
                return
            if not self._note_made(incident_id, claim, channel_id, name, requester=requester):
                self._superseded(incident_id, requester, made=channel_id)
                return
        invited, missed = self._invite(incident_id, channel_id, self._people(incident, requester))
        if not self._holds_claim(incident_id, claim):
            self._superseded(incident_id, requester)
            return
        ts = self._post_and_pin(channel_id, incident, resumed=made[0] is not None)
        recorded = self._record(
            incident_id,
            claim,
            channel_id,
            name,
            ts,
            requester=requester,
            invited=invited,
            missed=missed,
        )
        if not recorded:
            self._superseded(incident_id, requester, posted=(channel_id, ts))
            return
        self.count("created" if made[0] is None else "resumed")

    # -- the steps ----------------------------------------------------------------------

    def _claim(
        self, incident: Incident, *, requester: Requester, now: datetime, shows_channel: bool
    ) -> str | None:
        """Why no channel is started now (one exists, or is being started), or None: ours.

        A claim older than `CLAIM_S` was left by a start that never finished (its
        instance died); the new start takes it over, and finishes the setup in the
        channel that start made, if it got that far. The channel that exists is
        named only when `shows_channel` (the requester can see the incident).
        """
        if incident.has_live_channel or (incident.has_channel and not incident.is_open):
            where = render.channel_ref(incident.slack_channel_id or "") if shows_channel else ""
            return f"Incident #{incident.id} already has its channel {where}".rstrip() + "."
        started = incident.channel_requested_at
        if started is not None and now - started < timedelta(seconds=CLAIM_S):
            by = keep_mentions(incident.channel_requested_by or "someone")
            again = slack_date(started + timedelta(seconds=CLAIM_S))
            return (
                f"{by} is starting a channel for incident #{incident.id}; it comes in a "
                f"moment. If it has not come by {again}, start it again."
            )
        if incident.has_channel:
            _set_archived_aside(incident, now=now)
        incident.channel_requested_at = now
        incident.channel_requested_by = requester.display
        return None

    def _private(self, incident: Incident) -> bool:
        """Private when the incident's own channel is (or Slack cannot say): never a leak."""
        try:
            return self.actions.rights.workspace.is_private(incident.channel)
        except SlackFactsUnavailable:
            return True

    def _create(self, incident: Incident, *, tried: str | None) -> tuple[str, str]:
        """Make the channel (the id and name Slack gave it), or adopt the one named `tried`.

        `tried` is the name an earlier start asked for without hearing Slack's answer:
        when Slack says it is taken and the channel is opsbot's, it is that start's.
        """
        assert self.slack is not None
        pattern = self.config.incident_channels.name_pattern
        private = self._private(incident)
        error, needed = "name_taken", None
        for suffix in range(1, MAX_SUFFIX + 1):
            name = channel_name(pattern, incident, suffix=suffix)
            try:
                answer = self.slack.conversations_create(name=name, is_private=private)
            except SlackApiError as exc:
                status = exc.response.status_code
                error = str(exc.response.get("error") or f"http_{status}")
                needed = exc.response.get("needed")
                log.info(
                    "incident %s: conversations.create %s refused (%s)",
                    incident.id,
                    name,
                    error,
                    extra={"incident": incident.id, "slack_channel_name": name},
                )
                if error == "name_taken" and name == tried:
                    adopted = self._own_channel(incident.id, name)
                    if adopted is not None:
                        return adopted, name
                if error == "name_taken":
                    continue
                if status >= 500:  # Slack's own trouble: it may have made the channel
                    raise self._unanswered(incident.id, name, error) from None
                break
            except OSError as exc:
                if not _nothing_sent(exc):  # a timeout, a broken answer: it may be made
                    raise self._unanswered(incident.id, name, type(exc).__name__) from None
                raise ChannelRefused(
                    f"opsbot could not reach Slack ({type(exc).__name__}). Try again in a minute."
                ) from None
            except SlackClientError as exc:  # refused before it was sent
                raise ChannelRefused(
                    f"opsbot could not reach Slack ({type(exc).__name__}). Try again in a minute."
                ) from None
            channel = answer.get("channel") or {}
            return str(channel["id"]), str(channel.get("name") or name)
        raise ChannelRefused(f"opsbot could not create a channel: {_why(error, needed)}")

    def _unanswered(self, incident_id: int, name: str, error: str) -> ChannelRefused:
        """Slack's answer to making `name` is lost: the name is kept for the next start."""
        log.warning(
            "incident %s: no answer from conversations.create %s (%s); Slack may have made it",
            incident_id,
            name,
            error,
            extra={"incident": incident_id, "slack_channel_name": name, "error": error},
        )
        return ChannelRefused(
            f"Slack did not answer in time ({error}); it may have made #{name}. Start the "
            "channel again in a minute: opsbot then takes that channel, if Slack made it.",
            tried=name,
        )

    def _own_channel(self, incident_id: int, name: str) -> str | None:
        """The id of opsbot's live channel named `name`, held by no incident, or None.

        Only opsbot made it: opsbot is in it and, when Slack names the creator, is that.
        """
        assert self.slack is not None
        found: str | None = None
        try:
            cursor = None
            for _ in range(LIST_PAGES):
                page = self.slack.conversations_list(
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    limit=200,
                    cursor=cursor,
                )
                found = next(
                    (str(c["id"]) for c in page.get("channels") or [] if c.get("name") == name),
                    None,
                )
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if found is not None or not cursor:
                    break
            if found is None:
                return None
            info = self.slack.conversations_info(channel=found).get("channel") or {}
            creator = info.get("creator")
            ours = bool(info.get("is_member")) and not info.get("is_archived")
            if ours and creator:
                ours = creator == self.slack.auth_test().get("user_id")
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning(
                "incident %s: cannot check whether #%s is opsbot's (%s)",
                incident_id,
                name,
                type(exc).__name__,
                extra={"incident": incident_id, "slack_channel_name": name},
            )
            return None
        with self.sessions() as db_session:
            held = incidents.get_by_slack_channel(db_session, slack_channel_id=found)
        if not ours or held is not None:
            log.warning(
                "incident %s: #%s (%s) is taken and not its own; trying the next name",
                incident_id,
                name,
                found,
                extra={"incident": incident_id, "slack_channel": found},
            )
            return None
        self.count("adopted")
        log.info(
            "incident %s: adopting %s (#%s), made by a start that heard no answer",
            incident_id,
            found,
            name,
            extra={"incident": incident_id, "slack_channel": found},
        )
        return found

    def _note_made(
        self,
        incident_id: int,
        claim: datetime,
        channel_id: str,
        name: str,
        *,
        requester: Requester,
    ) -> bool:
        """Hold the new channel on the incident at once, still claimed (not yet set up).

        A crash before the setup is recorded then leaves the incident pointing at
        its channel, and the next start finishes it there instead of making a second.
        A claim dropped meanwhile (the start that took it over failed) is taken back.
        False, and nothing written, when another start holds the claim.
        """
        with self.sessions() as db_session:
            incident = incidents.lock(db_session, incident_id=incident_id)
            assert incident is not None
            free = incident.channel_requested_at is None and incident.slack_channel_id is None
            if free:
                incident.channel_requested_at = claim
                incident.channel_requested_by = requester.display
            if incident.channel_requested_at != claim:
                return False
            incident.slack_channel_id = channel_id
            incident.slack_channel_name = name
            db_session.commit()
        return True

    def _holds_claim(self, incident_id: int, claim: datetime) -> bool:
        with self.sessions() as db_session:
            incident = incidents.get(db_session, incident_id=incident_id)
            return incident is not None and incident.channel_requested_at == claim

    def _superseded(
        self,
        incident_id: int,
        requester: Requester,
        *,
        made: str | None = None,
        posted: tuple[str, str | None] | None = None,
    ) -> None:
        """Another start took this one's claim over (this one outlived `CLAIM_S`): it stops.

        A channel it made meanwhile is archived: the other start never knew of it. A
        summary it posted is deleted once the other start recorded another one (the
        other may have found and pinned this one, which it then keeps).
        """
        self.count("superseded")
        log.warning(
            "incident %s: a channel start outlived its claim; another start took over",
            incident_id,
            extra={"incident": incident_id, "slack_channel": made},
        )
        if made is not None:
            self._slack_quietly(
                "archive", incident_id, made, lambda s: s.conversations_archive(channel=made)
            )
        now = self.clock.now()
        with self.sessions() as db_session:
            incident = incidents.get_or_raise(db_session, incident_id=incident_id)
            if posted is not None and posted[1] is not None:
                kept = db_session.scalar(
                    select(SlackMessage.ts).where(SlackMessage.key == incident.channel_key)
                )
                if kept is not None and kept != posted[1]:
                    channel, ts = posted[0], posted[1]
                    self._slack_quietly(
                        "delete a second summary",
                        incident_id,
                        channel,
                        lambda s: s.chat_delete(channel=channel, ts=ts),
                    )
            done = "set the channel up" if incident.has_channel else "sets the channel up"
            text = (
                f"Starting the channel of incident #{incident_id} took so long that another "
                f"start took it over and {done}."
            )
            _audit_and_tell(
                db_session,
                incident,
                requester,
                outcome="cancelled",
                why="another start took over",
                text=text,
                now=now,
            )
            db_session.commit()

    def _slack_quietly(
        self, doing: str, incident_id: int, channel_id: str, call: Callable[[WebClient], object]
    ) -> None:
        """A courtesy call to Slack about `channel_id`: its failure is logged, never raised."""
        if self.slack is None:
            return
        try:
            call(self.slack)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning(
                "incident %s: channel start cannot %s in %s (%s)",
                incident_id,
                doing,
                channel_id,
                _error_of(exc),
                extra={"incident": incident_id, "slack_channel": channel_id},
            )

    def _people(self, incident: Incident, requester: Requester) -> list[str]:
        """Who is invited: the requester, everyone who acted on the incident, and on-call."""
        people: list[str] = []
        if requester.slack_user_id:
            people.append(requester.slack_user_id)
        with self.sessions() as db_session:
            events = incidents.timeline(db_session, incident_id=incident.id)
        texts = [incident.opened_by or "", incident.acknowledged_by or ""]
        texts += [e.actor or "" for e in events]
        people += SLACK_USER.findall(" ".join(texts))
        team = self.config.incident_oncall_team()
        if team is not None and self.oncall is not None:
            try:
                people += self.oncall(team)
            except Exception as exc:  # on-call is a courtesy: the channel starts without it
                log.warning(
                    "incident %s: cannot find who is on call in %s (%s)",
                    incident.id,
                    team,
                    type(exc).__name__,
                    extra={"incident": incident.id},
                )
        return list(dict.fromkeys(people))

    def _invite(
        self, incident_id: int, channel_id: str, people: list[str]
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """Invite each person (one refusal does not stop the others): who is in, and
        who is not with Slack's reason."""
        assert self.slack is not None
        invited: list[str] = []
        missed: list[tuple[str, str]] = []
        for user_id in people:
            try:
                self.slack.conversations_invite(channel=channel_id, users=user_id)
                invited.append(user_id)
                continue
            except SlackApiError as exc:
                if exc.response.get("error") == "already_in_channel":
                    invited.append(user_id)
                    continue
                error = _error_of(exc)
            except (SlackClientError, OSError) as exc:
                error = _error_of(exc)
            missed.append((user_id, error))
            self.count("invite_failed")
            log.warning(
                "incident %s: cannot invite %s to %s (%s)",
                incident_id,
                user_id,
                channel_id,
                error,
                extra={"incident": incident_id, "slack_channel": channel_id, "slack_user": user_id},
            )
        return invited, missed

    def _post_and_pin(self, channel_id: str, incident: Incident, *, resumed: bool) -> str | None:
        """The summary's first post, pinned; its content comes through the outbox after.

        `resumed`: the start that made the channel may have posted it before it died.
        """
        assert self.slack is not None
        try:
            topic = render.clip(
                f"Incident #{incident.id}: {incident.title} ({incident.severity})", TOPIC_MAX
            )
            self.slack.conversations_setTopic(channel=channel_id, topic=topic)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning(
                "incident %s: cannot set the topic of %s (%s)",
                incident.id,
                channel_id,
                _error_of(exc),
                extra={"incident": incident.id, "slack_channel": channel_id},
            )
        ts = self._posted_summary(channel_id, incident.id) if resumed else None
        if ts is None:
            try:
                posted = self.slack.chat_postMessage(
                    channel=channel_id,
                    text=render.summary_text(incident),
                    metadata=marked(SUMMARY_EVENT, {"incident": incident.id}),
                )
                ts = str(posted["ts"])
            except (SlackApiError, SlackClientError, OSError) as exc:
                # The outbox posts it instead (unpinned).
                log.warning(
                    "incident %s: cannot post the summary in %s (%s)",
                    incident.id,
                    channel_id,
                    _error_of(exc),
                    extra={"incident": incident.id, "slack_channel": channel_id},
                )
                return None
        try:
            self.slack.pins_add(channel=channel_id, timestamp=ts)
        except (SlackApiError, SlackClientError, OSError) as exc:
            error = _error_of(exc)
            if error != "already_pinned":  # by the start that died
                log.warning(
                    "incident %s: cannot pin the summary in %s (%s)",
                    incident.id,
                    channel_id,
                    error,
                    extra={"incident": incident.id, "slack_channel": channel_id},
                )
        return ts

    def _posted_summary(self, channel_id: str, incident_id: int) -> str | None:
        """The summary a dead start posted in the channel, or None (none, or unreadable)."""
        assert self.slack is not None
        try:
            history = self.slack.conversations_history(
                channel=channel_id, include_all_metadata=True, limit=100
            )
            found = [
                message
                for message in history.get("messages") or []
                # Asks Slack which bot opsbot is (auth.test) the first time it matters.
                if carries(message, SUMMARY_EVENT, {"incident": incident_id}, self.slack)
            ]
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning(
                "cannot read back %s (%s): posting the summary without the check",
                channel_id,
                type(exc).__name__,
                extra={"incident": incident_id, "slack_channel": channel_id},
            )
            return None
        if not found:
            return None
        log.info(
            "incident %s: the summary in %s was posted by the start that died",
            incident_id,
            channel_id,
            extra={"incident": incident_id, "slack_channel": channel_id},
        )
        return str(found[0]["ts"])

    def _record(
        self,
        incident_id: int,
        claim: datetime,
        channel_id: str,
        name: str,
        ts: str | None,
        *,
        requester: Requester,
        invited: list[str],
        missed: list[tuple[str, str]],
    ) -> bool:
        """The setup recorded, announced and audited; False when another start took over."""
        now = self.clock.now()
        with self.sessions() as db_session:
            incident = incidents.lock(db_session, incident_id=incident_id)
            assert incident is not None
            if incident.channel_requested_at != claim:
                return False
            incident.slack_channel_id = channel_id
            incident.slack_channel_name = name
            incident.channel_requested_at = None
            incident.channel_archive_after_days = self.config.incident_channels.archive_after_days
            if ts is not None:
                db_session.add(
                    SlackMessage(
                        key=incident.channel_key,
                        channel=channel_id,
                        channel_id=channel_id,
                        ts=ts,
                        created_at=now,
                        posted_at=now,
                    )
                )
                db_session.flush()
            incidents.add_event(
                db_session,
                incident=incident,
                kind="channel",
                at=now,
                now=now,
                actor=requester.display,
                text=f"#{name}",
                data={"channel": channel_id, "invited": invited, "not_invited": missed},
            )
            flows.thread_text(
                db_session,
                incident=incident,
                text=render.channel_intro(incident, by=requester.display),
                now=now,
                priority=requester.priority,
            )
            incident.updated_at = now
            flows.sync_message(
                db_session, incident=incident, now=now, clicked_at=requester.clicked_at
            )
            audit.record(
                db_session,
                at=now,
                actor=requester.audit_actor,
                action=f"incident.{START}",
                target=incident.target,
                outcome="ok",
                detail={"via": requester.via, "channel": channel_id, "name": name},
            )
            text = (
                f":hash: Started {render.channel_ref(channel_id)} for incident "
                f"#{incident.id} and invited {len(invited)} people."
            )
            if missed:
                who = ", ".join(f"<@{user_id}> ({error})" for user_id, error in missed)
                text += f" Slack refused to invite {who}: invite them by hand."
            respond(db_session, requester=requester, text=text, now=now)
            db_session.commit()
        log.info(
            "incident %s: channel %s started by %s",
            incident_id,
            channel_id,
            requester.audit_actor,
            extra={"incident": incident_id, "slack_channel": channel_id},
        )
        return True

    def _failed(
        self,
        incident_id: int,
        claim: datetime,
        *,
        requester: Requester,
        why: str,
        tried: str | None = None,
    ) -> None:
        """Slack refused: drop the claim (if still ours), audit, and tell the person.

        `tried`: the name Slack may have made a channel of unheard; the incident keeps
        it (while it holds no channel) so that the next start adopts that channel.
        """
        now = self.clock.now()
        with self.sessions() as db_session:
            incident = incidents.lock(db_session, incident_id=incident_id)
            assert incident is not None
            if incident.channel_requested_at == claim:
                incident.channel_requested_at = None
                incident.channel_requested_by = None
            if tried is not None and incident.slack_channel_id is None:
                incident.slack_channel_name = tried
            text = (
                f"{why} Incident #{incident.id} goes on in its thread in "
                f"{render.channel_ref(incident.channel)}."
            )
            _audit_and_tell(
                db_session, incident, requester, outcome="failed", why=why, text=text, now=now
            )
            db_session.commit()
        log.warning(
            "incident %s: channel not started (%s)",
            incident_id,
            why,
            extra={
                "incident": incident_id,
                "slack_user": requester.slack_user_id,
                "slack_channel_name": tried,
            },
        )


def _error_of(exc: Exception) -> str:
    """What Slack answered (its error code), or what kind of failure it was."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or f"http_{exc.response.status_code}")
    return type(exc).__name__


def _set_archived_aside(incident: Incident, *, now: datetime) -> None:
    """An open incident's archived channel is set aside, under its lock, for a new one.

    The incident's messages there keep their rows under keys marked with the old
    channel (so the new channel's start posts new ones); what was still owed there
    is cancelled: an archived channel takes no post.
    """
    old = incident.slack_channel_id
    assert old is not None
    db_session = Session.object_session(incident)
    assert db_session is not None
    prefix = incident.channel_key
    rows = db_session.scalars(
        select(SlackMessage).where(
            (SlackMessage.key == prefix)
            | SlackMessage.key.startswith(f"{prefix}:", autoescape=True),
            ~SlackMessage.key.contains("@"),
        )
    ).all()
    keys = [row.key for row in rows]
    for row in rows:
        row.key = f"{row.key}@{old}"
    if keys:
        db_session.execute(
            update(Delivery)
            .where(
                Delivery.message_key.in_(keys),
                Delivery.status == PENDING,
                Delivery.claimed_by.is_(None),
            )
            .values(status=CANCELLED, version=Delivery.version + 1, updated_at=now)
        )
    log.info(
        "incident %s: its archived channel %s is set aside for a new one",
        incident.id,
        old,
        extra={"incident": incident.id, "slack_channel": old},
    )
    incident.slack_channel_id = None
    incident.slack_channel_name = None
    incident.channel_event_id = None
    incident.channel_archive_at = None
    incident.channel_archived_at = None
    db_session.flush()


def _audit_and_tell(
    db_session: Session,
    incident: Incident,
    requester: Requester,
    *,
    outcome: str,
    why: str,
    text: str,
    now: datetime,
) -> None:
    """A start that did not set the channel up: its audit line and its answer, in one go."""
    audit.record(
        db_session,
        at=now,
        actor=requester.audit_actor,
        action=f"incident.{START}",
        target=incident.target,
        outcome=outcome,
        detail={"via": requester.via, "reason": why},
    )
    respond(db_session, requester=requester, text=text, now=now)
