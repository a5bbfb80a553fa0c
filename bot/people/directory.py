"""Finding people across Slack and PagerDuty, with the database as the cache.

Slack user -> PagerDuty user: a link made with `/opsbot link-pagerduty` wins;
otherwise the Slack email (`users.info`) is looked up among PagerDuty users
(`/users?query=`, exact match) and the answer is cached for a while.
PagerDuty user -> Slack mention: the same table read the other way, else the
PagerDuty user's email looked up in Slack (`users.lookupByEmail`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.exc import IntegrityError
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
        self._lock = threading.Lock()

    def _rest(self) -> PagerDutyRest:
        if self.pagerduty is None:
            raise PagerDutyUnavailable(NOT_CONFIGURED)
        return self.pagerduty

    def _save(self, slack_user_id: str, user: PagerDutyUser, *, linked: bool) -> None:
        with self.sessions() as db_session:
            try:
                service.save(
                    db_session,
                    slack_user_id=slack_user_id,
                    user=user,
                    linked=linked,
                    now=self.clock.now(),
                )
                db_session.commit()
            except IntegrityError:  # the same user looked up concurrently: theirs stands
                db_session.rollback()

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

    def slack_email(self, slack_user_id: str) -> str | None:
        try:
            return self.workspace.member(slack_user_id).email
        except SlackFactsUnavailable:  # logged by the workspace
            return None

    def pagerduty_user_for(self, slack_user_id: str) -> PagerDutyUser:
        """The PagerDuty user a Slack user acts as; NoPagerDutyUser says why there is none."""
        with self.sessions() as db_session:
            row = service.get(db_session, slack_user_id=slack_user_id)
            if row is not None and (row.linked or self.clock.now() - row.checked_at < self.cache):
                return PagerDutyUser(row.pagerduty_user_id, row.pagerduty_name, row.pagerduty_email)
        rest = self._rest()
        email = self.slack_email(slack_user_id)
        if email is None:
            raise NoPagerDutyUser(
                "opsbot cannot see your email address in Slack, so it cannot find you in "
                f"PagerDuty. {LINK_HINT}"
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
        """Map a Slack user to the PagerDuty user with `email`, overriding any lookup."""
        user = self._rest().find_user_by_email(email)
        if user is None:
            raise NoPagerDutyUser(f"No PagerDuty user has the email {code(email)}.")
        self._save(slack_user_id, user, linked=True)
        return user

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
        with self.sessions() as db_session:
            row = service.by_pagerduty_user(db_session, pagerduty_user_id=ref.id)
            if row is not None:
                return row.slack_user_id
        with self._lock:
            until = self._no_slack_user.get(ref.id)
            if until is not None and until > self.monotonic():
                return None
        found = self._lookup_in_slack(ref)
        if found is None:
            with self._lock:
                self._no_slack_user[ref.id] = self.monotonic() + NO_MATCH_CACHE_S
        return found

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
        slack_user_id = str((answer.get("user") or {}).get("id") or "")
        if not slack_user_id:
            return None
        self._save(slack_user_id, user, linked=False)
        return slack_user_id

    def display(self, ref: Reference) -> str:
        """A PagerDuty user as Slack shows them: a mention where one maps, else their name."""
        # Services and integrations act too: they are never anyone in Slack.
        slack_user_id = self._slack_user_for(ref) if ref.is_user else None
        return mention(slack_user_id) if slack_user_id else inert(ref.name, MAX_DISPLAY_CHARS)

    def display_all(self, refs: Iterable[Reference]) -> list[str]:
        return [self.display(ref) for ref in refs]
