"""Block Kit for pending actions: the confirmation message, in each of its states.

A pending action's summary, details and result are mrkdwn its kind composed,
with every outside word already escaped (bot/slack_text.py); they are cut
here to Slack's limits, not escaped again.
"""

from __future__ import annotations

from typing import Any

from bot.approvals.models import CANCELLED, DONE, EXECUTING, EXPIRED, FAILED, PendingAction
from bot.approvals.service import is_slack_user
from bot.slack_dates import slack_date
from bot.slack_text import (
    ANSWER_MAX,
    BUTTON_MAX,
    CONTEXT_MAX,
    HEADER_MAX,
    SECTION_MAX,
    TEXT_MAX,
    clip,
    code,
)

ACTION_IDS = {
    "confirm": "approval_confirm",
    "approve": "approval_approve",
    "cancel": "approval_cancel",
}


def actor_text(actor: str | None) -> str:
    """A Slack user as a mention, anyone else (cli:<name>) as code."""
    if not actor:
        return "?"
    return f"<@{actor}>" if is_slack_user(actor) else code(actor)


def _button(decision: str, text: str, action: PendingAction, style: str | None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": ACTION_IDS[decision],
        "text": {"type": "plain_text", "text": text},
        "value": str(action.id),
    }
    if style:
        button["style"] = style
    return button


def state_text(action: PendingAction) -> str:
    parts = []
    if action.needs_confirmation:
        if action.confirmed_by:
            parts.append(f"confirmed by {actor_text(action.confirmed_by)}")
        elif is_slack_user(action.requested_by):
            parts.append(f"waiting for {actor_text(action.requested_by)} to confirm")
        else:
            parts.append("waiting for a confirmation")
    if action.required_approvals:
        approvers = ", ".join(actor_text(u) for u in action.approvers)
        got = len(action.approvers)
        parts.append(
            f"approvals {got} of {action.required_approvals}"
            + (f" ({approvers})" if approvers else " (from someone other than the requester)")
        )
    return " · ".join(parts)


def _ending(action: PendingAction) -> str:
    who = actor_text(action.decided_by)
    if action.status == CANCELLED:
        return f":heavy_multiplication_x: Cancelled by {who} at {slack_date(action.decided_at)}"
    if action.status == EXPIRED:
        return f":hourglass: Expired at {slack_date(action.expires_at)} without every click"
    if action.status == EXECUTING:
        return f":gear: Going ahead ({who} at {slack_date(action.decided_at)})…"
    if action.status == DONE:
        return f":white_check_mark: {action.result or 'Done.'}"
    if action.status == FAILED:
        return f":x: {action.result or 'Failed.'}"
    return ""


def confirmation(action: PendingAction, *, confirm_label: str) -> dict[str, Any]:
    """The message that asks for clicks, and later says what came of them."""
    title = (
        ":raised_hand: Confirmation needed"
        if action.is_pending
        else ":clipboard: Request #" + str(action.id)
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(title, HEADER_MAX)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(action.summary, SECTION_MAX)}},
    ]
    if action.details:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": clip("\n".join(action.details), SECTION_MAX)},
            }
        )
    context = [
        f"Request #{action.id} by {actor_text(action.requested_by)} "
        f"at {slack_date(action.requested_at)}"
    ]
    if action.is_pending:
        context.append(f"expires {slack_date(action.expires_at)}")
    state = state_text(action)
    if state:
        context.append(state)
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": clip(" · ".join(context), CONTEXT_MAX)}],
        }
    )
    if action.is_pending:
        buttons = []
        if action.confirmation_missing:
            buttons.append(_button("confirm", clip(confirm_label, BUTTON_MAX), action, "primary"))
        if action.approvals_missing:
            buttons.append(_button("approve", "Approve", action, None))
        buttons.append(_button("cancel", "Cancel", action, "danger"))
        blocks.append({"type": "actions", "block_id": action.message_key, "elements": buttons})
    else:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": clip(_ending(action), SECTION_MAX)},
            }
        )
    status = "waiting" if action.is_pending else action.status
    text = clip(f"Request #{action.id} ({status}): {action.summary}", TEXT_MAX)
    return {"text": text, "blocks": blocks}


def text_reply(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A reply in a request's thread: mrkdwn opsbot composed (outside words escaped)."""
    return {"text": clip(str(items[-1]["text"]), SECTION_MAX), "blocks": None}


def ephemeral(text: str) -> dict[str, Any]:
    """An answer only the person who clicked or typed sees (mrkdwn opsbot composed, cut)."""
    return {"response_type": "ephemeral", "replace_original": False, "text": clip(text, ANSWER_MAX)}
