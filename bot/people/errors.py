"""Errors of the people domain; the message is what a person reads, as Slack mrkdwn."""

from __future__ import annotations

LINK_HINT = (
    "Link your PagerDuty account to your Slack user: `/opsbot link-pagerduty you@example.com`"
)


class NoPagerDutyUser(Exception):
    """A Slack user opsbot cannot find in PagerDuty."""
