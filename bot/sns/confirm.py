"""Confirming a subscription by visiting its SubscribeURL (after the URL check)."""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.sns.envelope import Envelope
from bot.sns.verify import check_url


def confirm_subscription(
    envelope: Envelope, *, url_pattern: re.Pattern[str], fetch: Callable[[str], bytes]
) -> None:
    url = envelope.subscribe_url or ""
    check_url(url, url_pattern, topic_arn=envelope.topic_arn)
    fetch(url)
