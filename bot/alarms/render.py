"""Block Kit for SNS messages that are not CloudWatch alarms."""

from __future__ import annotations

from typing import Any

from bot.incidents.render import clip


def notice_message(*, subject: str | None, body: str, topic_arn: str | None) -> dict[str, Any]:
    title = subject or "Notification"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(f":mega: {title}", 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(body or "(empty)", 3000)}},
    ]
    if topic_arn:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"from `{topic_arn}`"}]}
        )
    return {"text": clip(f"{title}: {body}", 3000), "blocks": blocks}
