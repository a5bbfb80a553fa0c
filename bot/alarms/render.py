"""Block Kit for SNS messages that are not CloudWatch alarms.

The subject and the body are whatever was published to the topic: both are
shown as inert text.
"""

from __future__ import annotations

from typing import Any

from bot.slack_text import CONTEXT_MAX, HEADER_MAX, SECTION_MAX, TEXT_MAX, clip, code, inert


def _text(kind: str, text: str) -> dict[str, str]:
    return {"type": kind, "text": text}


def notice_message(*, subject: str | None, body: str, topic_arn: str | None) -> dict[str, Any]:
    title = subject or "Notification"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _text("plain_text", inert(f":mega: {title}", HEADER_MAX))},
        {"type": "section", "text": _text("mrkdwn", inert(body or "(empty)", SECTION_MAX))},
    ]
    if topic_arn:
        source = clip(f"from {code(topic_arn)}", CONTEXT_MAX)
        blocks.append({"type": "context", "elements": [_text("mrkdwn", source)]})
    return {"text": inert(f"{title}: {body}", TEXT_MAX), "blocks": blocks}
