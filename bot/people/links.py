"""Linking a Slack user to a PagerDuty identity they can prove.

A member links only the email of their own Slack profile (Slack verified it);
linking any other email, for someone else, or for a guest or someone of another
organisation (whose profile email this workspace does not vouch for) is an
admin's act. Every link, unlink and refusal is audited with who asked and for whom.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from bot.audit import service as audit
from bot.clock import Clock
from bot.pagerduty.errors import PagerDutyError
from bot.people.directory import PeopleDirectory, mention
from bot.people.errors import ADMIN_LINK_HINT, NoPagerDutyUser
from bot.rights.errors import RightMissing, SlackFactsUnavailable
from bot.rights.service import Rights
from bot.rights.workspace import Workspace
from bot.slack_text import code, escape

log = logging.getLogger(__name__)


class PagerDutyLinks:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        people: PeopleDirectory,
        rights: Rights,
        workspace: Workspace,
        clock: Clock,
    ) -> None:
        self.sessions = sessions
        self.people = people
        self.rights = rights
        self.workspace = workspace
        self.clock = clock

    def _audit(self, *, actor: str, action: str, subject: str, outcome: str, **detail: str) -> None:
        with self.sessions() as db_session:
            audit.record(
                db_session,
                at=self.clock.now(),
                actor=actor,
                action=f"people.{action}",
                target=f"slack-user:{subject}",
                outcome=outcome,
                detail=detail,
            )
            db_session.commit()
        log.info(
            "people.%s %s by %s for %s",
            action,
            outcome,
            actor,
            subject,
            extra={"slack_user": actor},
        )

    def show(self, user_id: str) -> str:
        """Who `user_id` acts as in PagerDuty, as far as opsbot has stored it."""
        current = self.people.current_link(user_id)
        if current is None:
            return (
                "opsbot has not matched you to a PagerDuty user yet: it looks you up by your "
                f"Slack email the first time you act. {ADMIN_LINK_HINT}"
            )
        user, linked = current
        how = "linked by hand" if linked else "found by your Slack email"
        return f"You act in PagerDuty as *{escape(user.name)}* ({code(user.email)}), {how}."

    def link(self, *, requester: str, email: str, for_user: str | None = None) -> str:
        """Link `for_user` (default: the requester) to the PagerDuty user with `email`."""
        subject = for_user or requester
        try:
            self._authorize_link(requester=requester, email=email, subject=subject)
        except RightMissing as exc:
            self._audit(
                actor=requester, action="link", subject=subject, outcome="refused", reason=exc.right
            )
            return str(exc)
        try:
            user = self.people.link(subject, email)
        except NoPagerDutyUser as exc:
            return escape(exc)
        except PagerDutyError as exc:
            said = escape(exc)
            return f"opsbot cannot check that with PagerDuty right now ({said}). Try again later."
        self._audit(
            actor=requester,
            action="link",
            subject=subject,
            outcome="ok",
            pagerduty_user=user.id,
            email=user.email,
        )
        who = "you act" if subject == requester else f"{mention(subject)} acts"
        return f":link: Linked: {who} in PagerDuty as *{escape(user.name)}* ({code(user.email)})."

    def _authorize_link(self, *, requester: str, email: str, subject: str) -> None:
        if subject != requester:
            self.rights.require_admin(requester, doing="link someone else's PagerDuty identity")
            try:
                deactivated = self.workspace.member(subject).deactivated
            except SlackFactsUnavailable as exc:
                raise RightMissing(
                    f"opsbot cannot read {mention(subject)}'s Slack profile ({exc}); "
                    "nothing was linked.",
                    right="an active Slack account",
                ) from None
            if deactivated:
                # A deactivated account is nobody: it would be named on call and invited.
                raise RightMissing(
                    f"{mention(subject)}'s Slack account is deactivated: a deactivated "
                    "account holds no PagerDuty identity. Nothing was linked.",
                    right="an active Slack account",
                )
            return
        try:
            member = self.workspace.member(requester)
        except SlackFactsUnavailable as exc:
            raise RightMissing(
                f"opsbot cannot read your Slack profile ({exc}); nothing was linked.",
                right="`own email`",
            ) from None
        if member.is_guest:
            # A guest's or another organisation's profile email is not one this
            # workspace vouches for, and a link outranks the email's real owner.
            try:
                self.rights.require_admin(requester, doing="link a PagerDuty identity")
            except RightMissing:
                raise RightMissing(
                    "Guests and people of other organisations cannot link a PagerDuty identity "
                    "themselves, not even their own Slack email: that needs the `admin` right "
                    "(`rights.admins`). Nothing was linked. Ask an opsbot admin to link it: "
                    "`/opsbot link-pagerduty @you you@example.com`.",
                    right="`admin` (a guest linking)",
                ) from None
            return
        own = member.email
        if own is not None and own.lower() == email.lower():
            return
        try:
            self.rights.require_admin(requester, doing="link an email that is not yours")
        except RightMissing:
            yours = code(own) if own else "hidden in this workspace"
            raise RightMissing(
                f"You can link only the email of your own Slack profile ({yours}), so that "
                f"nobody can act in PagerDuty as someone else. {ADMIN_LINK_HINT}",
                right="`admin` (to link another email)",
            ) from None

    def unlink(self, *, requester: str, for_user: str | None = None) -> str:
        """Forget `for_user`'s link (default: the requester's); others' links need an admin."""
        subject = for_user or requester
        if subject != requester:
            try:
                self.rights.require_admin(requester, doing="unlink someone else")
            except RightMissing as exc:
                self._audit(
                    actor=requester,
                    action="unlink",
                    subject=subject,
                    outcome="refused",
                    reason=exc.right,
                )
                return str(exc)
        removed = self.people.unlink(subject)
        self._audit(actor=requester, action="unlink", subject=subject, outcome="ok")
        whom = "you" if subject == requester else mention(subject)
        if not removed:
            return f"{whom[0].upper()}{whom[1:]} had no PagerDuty link."
        return f"Unlinked: opsbot looks {whom} up in PagerDuty by Slack email again."
