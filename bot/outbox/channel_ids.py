"""The ids of the Slack channels the configuration names by `#name`.

Slack takes a channel's name in chat.postMessage only: reading a channel back
(conversations.history, conversations.replies) and chat.update need its id.
The names are read from conversations.list once and kept for an hour; a name
not found there is looked for again at most once a minute (a channel created
since), never at every send.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient

log = logging.getLogger(__name__)

CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
# A direct message addressed to a person (a lock reminder): no channel list names it.
USER_ID = re.compile(r"^[UW][A-Z0-9]{6,}$")
# A workspace with more channels than this is listed no further: a name beyond
# them is taken as not found (its message is posted without reading back).
MAX_PAGES = 50
PAGE_SIZE = 1000
KEEP_S = 3600.0  # a channel renamed or archived since is seen within this
REREAD_MISSING_S = 60.0


class ChannelIds:
    """Channel ids by name, read with the client the outbox sends with."""

    def __init__(
        self, client: WebClient, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = client
        self.monotonic = monotonic
        self._ids: dict[str, str] = {}
        self._read_at: float | None = None
        # One listing at a time: senders that need an id meanwhile wait for its answer.
        self._lock = threading.Lock()

    def id_of(self, channel: str) -> str | None:
        """The id of `channel` (an id, or a name with or without `#`); None when no
        channel has that name. Raises what the client raises when Slack cannot say."""
        if CHANNEL_ID.match(channel):
            return channel
        if USER_ID.match(channel):
            return None
        name = channel.removeprefix("#")
        with self._lock:
            age = None if self._read_at is None else self.monotonic() - self._read_at
            if age is not None and age < KEEP_S and name in self._ids:
                return self._ids[name]
            if age is not None and age < REREAD_MISSING_S:
                return None
            self._ids = self._listed()
            self._read_at = self.monotonic()
            return self._ids.get(name)

    def _listed(self) -> dict[str, str]:
        ids: dict[str, str] = {}
        cursor = ""
        for _ in range(MAX_PAGES):
            answer = self.client.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=PAGE_SIZE,
                cursor=cursor or None,
            )
            for channel in answer.get("channels") or []:
                ids[str(channel.get("name"))] = str(channel.get("id"))
            cursor = ((answer.get("response_metadata") or {}).get("next_cursor")) or ""
            if not cursor:
                return ids
        log.warning("more than %d channels to list: the rest are not looked at", len(ids))
        return ids
