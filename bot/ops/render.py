"""What opsbot says about itself: ops-channel notices, its own page, `/opsbot status`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.incidents.render import clip, duration
from bot.slack_dates import plain, slack_date

if TYPE_CHECKING:
    from bot.ops.status import Status

RETRY_ACTION = "opsbot_retry_delivery"
TARGET_NAMES = {
    "pagerduty": "PagerDuty events",
    "slack": "Slack messages",
    "slack_response": "answers (response_url)",
    "pagerduty_rest": "PagerDuty REST calls",
}


def escape(text: str) -> str:
    """Text from outside (an error Slack or PagerDuty sent back), safe in Slack mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, 3000)}}


def dead_deliveries(*, count: int, since: datetime, latest: dict[str, Any]) -> dict[str, Any]:
    what = "1 delivery was" if count == 1 else f"{count} deliveries were"
    text = (
        f":skull: {what} abandoned since {slack_date(since)}: Slack or PagerDuty refused "
        f"them for good. Latest: #{latest['delivery']} ({latest['kind']} to "
        f"`{escape(str(latest['target']))}`): `{escape(clip(str(latest['error']), 300))}`. "
        "Fix the cause, then retry them (`/opsbot status`, or `opsbot outbox retry`)."
    )
    return {"text": text, "blocks": [_section(text)]}


def late_pages(
    *, since: datetime, waiting_s: float, pending: int, over_at: datetime | None
) -> dict[str, Any]:
    if over_at is None:
        text = (
            f":hourglass_flowing_sand: Pages are late: a PagerDuty event has waited "
            f"{duration(waiting_s)} to go out ({pending} waiting, since {slack_date(since)}). "
            "On-call may not be paged: check `/opsbot status`."
        )
    else:
        text = (
            f":white_check_mark: Pages were late from {slack_date(since)} "
            f"to {slack_date(over_at)}; "
            "every PagerDuty event has gone out since."
        )
    return {"text": text, "blocks": [_section(text)]}


def slack_auth_page(*, error: str) -> dict[str, Any]:
    """The Events API body of opsbot's own page when Slack refuses its token."""
    return {
        "payload": {
            "summary": clip(
                "opsbot: Slack refuses the bot's token; no alarm reaches Slack until it is "
                "replaced (SLACK_BOT_TOKEN)",
                1024,
            ),
            "source": "opsbot",
            "severity": "critical",
            "component": "slack",
            "custom_details": {"error": clip(error, 500)},
        },
        "client": "opsbot",
    }


# -- /opsbot status -------------------------------------------------------------------------


def _lines(status: Status) -> list[str]:
    lines = [f"opsbot {status.version} ({status.commit}), configuration {status.config_version}"]
    auth = "OK" if status.slack_auth_ok else "REFUSED"
    if status.slack_auth_lost_since is not None:
        auth += f" (refused since {slack_date(status.slack_auth_lost_since)})"
    lines.append(f"Slack token: {auth}")
    lines.append(f"Last Slack call accepted: {slack_date(status.last_slack_ok_at)}")
    lines.append(f"Last PagerDuty event accepted: {slack_date(status.last_pagerduty_ok_at)}")
    lines.append(f"Leader (runs scheduled jobs): {status.leader or 'none seen'}")
    return lines


def status_text(status: Status) -> str:
    """`opsbot status`: for a terminal."""
    lines = _lines(status)
    lines.append("Outbox:")
    for target, pending, oldest_s in status.backlog:
        lines.append(
            f"  {target:16} {pending:6} waiting, oldest {duration(oldest_s) if pending else '-'}"
        )
    lines.append("Instances:")
    for seen in status.instances:
        state = "live" if seen.live else "gone"
        leader = ", leader" if seen.leader else ""
        lines.append(
            f"  {seen.id} ({seen.version}, {seen.commit}{leader}): {state}, "
            f"last seen {slack_date(seen.seen_at)}"
        )
    if not status.instances:
        lines.append("  none has reported yet")
    lines.append(f"Dead deliveries (newest {len(status.dead)}):")
    for row in status.dead:
        lines.append(f"  #{row.id} {row.kind} to {row.target}: {clip(row.error, 200)}")
    if not status.dead:
        lines.append("  none")
    return plain("\n".join(lines))


def status_message(status: Status) -> dict[str, Any]:
    """`/opsbot status`: an ephemeral message, a Retry button on each dead delivery."""
    head = "\n".join(escape(line) for line in _lines(status))
    outbox = "\n".join(
        f"• {TARGET_NAMES.get(target, target)}: {pending} waiting"
        + (f", oldest {duration(oldest_s)}" if pending else "")
        for target, pending, oldest_s in status.backlog
    )
    live = [s for s in status.instances if s.live]
    instances = (
        ", ".join(f"`{escape(s.id)}`" + (" (leader)" if s.leader else "") for s in live)
        or "none live"
    )
    blocks: list[dict[str, Any]] = [
        _section(f"*opsbot status*\n{head}"),
        _section(f"*Outbox*\n{outbox}"),
        _section(f"*Instances seen*: {instances}"),
    ]
    if status.dead:
        blocks.append(_section(f"*Dead deliveries* (newest {len(status.dead)})"))
    for row in status.dead:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": clip(
                        f"#{row.id} {row.kind} to `{escape(row.target)}` "
                        f"({slack_date(row.updated_at)}): `{escape(clip(row.error, 300))}`",
                        3000,
                    ),
                },
                "accessory": {
                    "type": "button",
                    "action_id": RETRY_ACTION,
                    "value": str(row.id),
                    "text": {"type": "plain_text", "text": "Retry"},
                },
            }
        )
    if not status.dead:
        blocks.append(_section("*Dead deliveries*: none"))
    return {"text": "opsbot status", "blocks": blocks[:50]}
