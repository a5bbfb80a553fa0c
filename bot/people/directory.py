"""Finding people across Slack and PagerDuty, with the database as the cache.

Slack user -> PagerDuty user: a link made with `/opsbot link-pagerduty` wins;
otherwise the Slack email (`users.info`) is looked up among PagerDuty users
(`/users?query=`, exact match) and the answer is cached for a while.
PagerDuty user -> Slack mention: the same table read the other way, else the
PagerDuty user's email looked up in Slack (`users.lookupByEmail`). There too a
lookup is trusted for the cache age only (a PagerDuty seat may be handed to
someone else), and a deactivated Slack account is nobody's mention: a link made
by hand is checked against Slack once per cache age.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.pagerduty.errors import PagerDutyError, PagerDutyUnavailable
from bot.pagerduty.rest import PagerDutyRest, PagerDutyUser
from bot.pagerduty.webhooks import Reference
from bot.people import service
from bot.people.errors import LINK_HINT, NoPagerDutyUser
from bot.rights.errors import SlackFactsUnavailable
from bot.rights.workspace import Workspace
from bot.slack_text import code, inert

log = logging.getLogger(__name__)

# The longest name `display` gives: the columns it is kept in (who acknowledged,
# resolved or opened an incident, a timeline event's actor) hold 255 characters,
# and PagerDuty's names (an integration's especially) can be longer once escaped.
MAX_DISPLAY_CHARS = 255
NO_MATCH_CACHE_S = 600.0  # a PagerDuty user with no Slack user is asked about again after this
NOT_CONFIGURED = "opsbot has no PagerDuty API token (PAGERDUTY_API_TOKEN), so it cannot act there."


def mention(slack_user_id: str) -> str:
    return f"<@{slack_user_id}>"


class PeopleDirectory:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        slack: WebClient | None,
        pagerduty: PagerDutyRest | None,
        clock: Clock,
        cache_h: float,
        workspace: Workspace,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.slack = slack
        # The rights check has just read the clicker's profile there, email included.
        self.workspace = workspace
        self.pagerduty = pagerduty
        self.clock = clock
        self.cache = timedelta(hours=cache_h)
        self.monotonic = monotonic
        self._no_slack_user: dict[str, float] = {}
        self._not_active: dict[str, float] = {}  # Slack user -> monotonic time to ask again
        self._lock = threading.Lock()

    def _rest(self) -> PagerDutyRest:
        if self.pagerduty is None:
            raise PagerDutyUnavailable(NOT_CONFIGURED)
        return self.pagerduty

    def _save(
        self, slack_user_id: str, user: PagerDutyUser, *, linked: bool
    ) -> tuple[PagerDutyUser, bool] | None:
        """Record a mapping; what is stored after it, and whether it was linked by hand."""
        with self.sessions() as db_session:
            row = service.save(
                db_session,
                slack_user_id=slack_user_id,
                user=user,
                linked=linked,
                now=self.clock.now(),
            )
            db_session.commit()
            if row is None:  # unlinked at the same moment
                return None
            stored = PagerDutyUser(row.pagerduty_user_id, row.pagerduty_name, row.pagerduty_email)
            return stored, row.linked

    # -- Slack user -> PagerDuty user ---------------------------------------------------

    def slack_names(self, slack_user_ids: Iterable[str]) -> dict[str, str]:
        """Display names of Slack users, for text that leaves Slack (a postmortem)."""
        names: dict[str, str] = {}
        if self.slack is None:
            return names
        for user_id in sorted(set(slack_user_ids)):
            try:
                user = self.slack.users_info(user=user_id).get("user") or {}
            except (SlackApiError, SlackClientError, OSError):
                continue
            profile = user.get("profile") or {}
            name = profile.get("display_name") or user.get("real_name") or user.get("name")
            if name:
                names[user_id] = str(name)
        return names

    def _vouched_email(self, slack_user_id: str) -> str | None:
        """The Slack profile email a person acts in PagerDuty by; a guest's or another
        organisation's (Slack Connect) is none: their own organisation sets it, and
        it could be the email of one of ours. An admin links them instead."""
        member = self.workspace.full_member(slack_user_id)
        return None if member is None else member.email

    def pagerduty_user_for(self, slack_user_id: str) -> PagerDutyUser:
        """The PagerDuty user a Slack user acts as; NoPagerDutyUser says why there is none."""
        with self.sessions() as db_session:
            row = service.get(db_session, slack_user_id=slack_user_id)
            found = (
                None
                if row is None
                else PagerDutyUser(row.pagerduty_user_id, row.pagerduty_name, row.pagerduty_email)
            )
            linked = row is not None and row.linked
            fresh = row is not None and self.clock.now() - row.checked_at < self.cache
        # A lookup row is an email match: a guest's (saved before guests were refused)
        # proves nothing. A link is an admin's word.
        if found is not None and (linked or (fresh and self._vouched(slack_user_id))):
            return found
        rest = self._rest()
        email = self._vouched_email(slack_user_id)
        if email is None:
            raise NoPagerDutyUser(
                "opsbot cannot see your email address in Slack (or, for a guest or someone "
                "of another organisation, does not take it as proof of who you are), so it "
                f"cannot find you in PagerDuty. {LINK_HINT}"
            )
        user = rest.find_user_by_email(email)
        if user is None:
            with self.sessions() as db_session:
                if service.remove(db_session, slack_user_id=slack_user_id, linked_too=False):
                    db_session.commit()
            raise NoPagerDutyUser(
                f"No PagerDuty user has your Slack email {code(email)}. If you use another "
                f"email in PagerDuty: {LINK_HINT}"
            )
        self._save(slack_user_id, user, linked=False)
        return user

    def link(self, slack_user_id: str, email: str) -> PagerDutyUser:
        """Map a Slack user to the PagerDuty user with `email`, overriding any lookup.

        The answer is what is stored: another link made at the same moment may stand instead.
        """
        user = self._rest().find_user_by_email(email)
        if user is None:
            raise NoPagerDutyUser(f"No PagerDuty user has the email {code(email)}.")
        stored = self._save(slack_user_id, user, linked=True)
        if stored is None:
            raise NoPagerDutyUser("The link was removed at the same moment; nothing is linked.")
        return stored[0]

    def unlink(self, slack_user_id: str) -> bool:
        with self.sessions() as db_session:
            removed = service.remove(db_session, slack_user_id=slack_user_id, linked_too=True)
            db_session.commit()
            return removed

    def forget_lookup(self, slack_user_id: str) -> None:
        """Drop a cached lookup PagerDuty no longer agrees with (a link made by hand stays)."""
        with self.sessions() as db_session:
            if service.remove(db_session, slack_user_id=slack_user_id, linked_too=False):
                db_session.commit()

    def current_link(self, slack_user_id: str) -> tuple[PagerDutyUser, bool] | None:
        """The stored mapping and whether it was linked by hand, without asking anyone."""
        with self.sessions() as db_session:
            row = service.get(db_session, slack_user_id=slack_user_id)
            if row is None:
                return None
            user = PagerDutyUser(row.pagerduty_user_id, row.pagerduty_name, row.pagerduty_email)
            return user, row.linked

    # -- PagerDuty user -> Slack ---------------------------------------------------------

    def _slack_user_for(self, ref: Reference) -> str | None:
        # A mapping is trusted for the cache age. Then a lookup is asked again (the
        # PagerDuty seat may be someone else's now), and a link made by hand holds
        # only while its Slack account is active: the person named is the one
        # invited into incident channels.
        now = self.clock.now()
        with self.sessions() as db_session:
            rows = [
                (row.slack_user_id, row.linked, now - row.checked_at < self.cache)
                for row in service.by_pagerduty_user(db_session, pagerduty_user_id=ref.id)
            ]
        for slack_user_id, linked, fresh in rows:
            if linked and (fresh or self._still_active(slack_user_id)):
                return slack_user_id
        for slack_user_id, linked, fresh in rows:
            # A lookup saved for a guest before guests' emails stopped counting names nobody.
            if fresh and not linked and self._vouched(slack_user_id):
                return slack_user_id
        with self._lock:
            until = self._no_slack_user.get(ref.id)
            if until is not None and until > self.monotonic():
                return None
        if any(not linked for _, linked, _ in rows):  # all stale by now: misses
            with self.sessions() as db_session:
                service.remove_lookups(
                    db_session, pagerduty_user_id=ref.id, before=now - self.cache
                )
                db_session.commit()
        found = self._lookup_in_slack(ref)
        if found is None:
            with self._lock:
                self._no_slack_user[ref.id] = self.monotonic() + NO_MATCH_CACHE_S
        return found

    def _still_active(self, slack_user_id: str) -> bool:
        """Whether a link made by hand, due for a check, names an active Slack account.

        A deactivated or unreadable account is not asked about again for a while:
        at most one `users.info` per cache age (or per NO_MATCH_CACHE_S on failure).
        """
        with self._lock:
            until = self._not_active.get(slack_user_id)
            if until is not None and until > self.monotonic():
                return False
        try:
            deactivated = self.workspace.member(slack_user_id).deactivated
        except SlackFactsUnavailable:  # logged by the workspace; named by name meanwhile
            with self._lock:
                self._not_active[slack_user_id] = self.monotonic() + NO_MATCH_CACHE_S
            return False
        if deactivated:
            log.info("the PagerDuty link of %s names a deactivated Slack account", slack_user_id)
            with self._lock:
                self._not_active[slack_user_id] = self.monotonic() + self.cache.total_seconds()
            return False
        with self.sessions() as db_session:
            service.confirm(db_session, slack_user_id=slack_user_id, now=self.clock.now())
            db_session.commit()
        return True

    def _lookup_in_slack(self, ref: Reference) -> str | None:
        if self.pagerduty is None or self.slack is None:
            return None
        try:
            user = self.pagerduty.get_user(ref.id)
        except PagerDutyError as exc:
            log.warning("cannot read PagerDuty user %r (%r)", ref.id, str(exc))
            return None
        if user is None or not user.email:
            return None
        try:
            answer = self.slack.users_lookupByEmail(email=user.email)
        except SlackApiError as exc:
            if exc.response.get("error") != "users_not_found":
                log.warning("users.lookupByEmail failed (%s)", exc.response.get("error"))
            return None
        except (SlackClientError, OSError) as exc:
            log.warning("users.lookupByEmail failed (%s)", type(exc).__name__)
            return None
        found = answer.get("user") or {}
        slack_user_id = str(found.get("id") or "")
        if not slack_user_id or found.get("deleted"):  # a deactivated account is nobody
            return None
        if not self._vouched(slack_user_id):
            return None  # a guest's email proves nothing: shown by name, never acting as them
        self._save(slack_user_id, user, linked=False)
        return slack_user_id

    def _vouched(self, slack_user_id: str) -> bool:
        """Whether the Slack user's profile email is one this workspace vouches for: not a
        guest's nor another organisation's (nor one Slack cannot say about now)."""
        return self.workspace.full_member(slack_user_id) is not None

    def display(self, ref: Reference) -> str:
        """A PagerDuty user as Slack shows them: a mention where one maps, else their name."""
        # Services and integrations act too: they are never anyone in Slack.
        slack_user_id = self._slack_user_for(ref) if ref.is_user else None
        return mention(slack_user_id) if slack_user_id else inert(ref.name, MAX_DISPLAY_CHARS)

    def display_all(self, refs: Iterable[Reference]) -> list[str]:
        return [self.display(ref) for ref in refs]
