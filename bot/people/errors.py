"""Errors of the people domain; the message is what a person reads, as Slack mrkdwn."""

from __future__ import annotations

ADMIN_LINK_HINT = (
    "If PagerDuty knows you by another email, ask an opsbot admin to link it: "
    "`/opsbot link-pagerduty @you you@example.com`."
)
LINK_HINT = "opsbot finds you in PagerDuty by the email of your Slack profile. " + ADMIN_LINK_HINT


class NoPagerDutyUser(Exception):
    """A Slack user opsbot cannot find in PagerDuty."""
