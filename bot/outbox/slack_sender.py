"""Sending Slack deliveries with slack_sdk, and telling apart what to retry."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.commands import SEPARATE, Naming
from bot.outbox.channel_ids import ChannelIds
from bot.outbox.models import SLACK_MESSAGE, SLACK_REPLY, SLACK_RESPONSE
from bot.outbox.pacing import SLACK_UPDATES, Pacer
from bot.outbox.results import Dead, Job, MessageRef, Result, Retry, Sent, retry_after_s
from bot.outbox.worker import lease_still_held
from bot.slack_metadata import carries, marked

log = logging.getLogger(__name__)
# A post after a look for an earlier copy, by an instance whose lease ended meanwhile:
# not made, as whoever holds the delivery now looks and posts.
_TAKEN_OVER = Retry(error="its lease ended before the post; whoever holds the delivery posts it")

METADATA_EVENT = "opsbot_delivery"

# Fixing these needs a person (a token, a scope): keep the work, retry slowly.
NEEDS_OPERATOR = {
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "missing_scope",
    "no_permission",
    "team_access_not_granted",
}
TRANSIENT = {
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "ratelimited",
}
# A post answered so may have been made all the same: Slack says of both "it's possible
# some aspect of the operation succeeded before the error was raised", as of any 5xx.
MAY_HAVE_POSTED = {"fatal_error", "internal_error"}
# Slack's answer will not change however often it is asked.
PERMANENT = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "invalid_blocks",
    "invalid_blocks_format",
    "msg_too_long",
    "no_text",
    "too_many_attachments",
    "invalid_arguments",
    "invalid_metadata_format",
    "cant_update_message",
    "edit_window_closed",
    "restricted_action",
    "message_limit_exceeded",
}
MAX_UNKNOWN_ATTEMPTS = 8
# The look for an earlier attempt reads what was written since a little before its
# delivery was (its first attempt came after): this margin covers the two clocks.
LOOK_BACK_MARGIN = timedelta(minutes=5)
# It reads a page at a time, at most LOOK_PAGES: past that the message is posted
# without the check (logged), as a later look would have more to read, not less.
LOOK_PAGE = 200
LOOK_PAGES = 5
# The calls that look for an earlier attempt are paced here, each by its own method's
# limit, apart from the posts the worker paces: a 429 answered to one pauses that
# method's look-ups only, never a channel's posts (bot/outbox/pacing.py).
SLACK_HISTORY = "slack.history"  # conversations.history: Tier 3, 50+ a minute
SLACK_REPLIES = "slack.replies"  # conversations.replies: Tier 3, 50+ a minute
SLACK_LIST = "slack.list"  # conversations.list: Tier 2, 20+ a minute
LOOK_UP_LIMITS: dict[str, tuple[float, float]] = {  # lane -> (rate per second, burst)
    SLACK_HISTORY: (50 / 60, 50.0),
    SLACK_REPLIES: (50 / 60, 50.0),
    SLACK_LIST: (20 / 60, 20.0),
}
METHODS = {
    SLACK_HISTORY: "conversations.history",
    SLACK_REPLIES: "conversations.replies",
    SLACK_LIST: "conversations.list",
}
# A delivery whose look-up waits for its lane is asked again no sooner than this.
MIN_LOOK_UP_WAIT_S = 1.0


def _metadata(job: Job) -> dict[str, Any]:
    return marked(METADATA_EVENT, {"delivery": job.id})


def answers_later(error: SlackApiError) -> bool:
    """Slack could not answer now (a rate limit, its own trouble), but will later."""
    status = error.response.status_code
    return status == 429 or status >= 500 or error.response.get("error") in TRANSIENT


def _carries(message: dict[str, Any], job: Job, slack: WebClient) -> bool:
    return carries(message, METADATA_EVENT, {"delivery": job.id}, slack)


def classify(error: SlackApiError, job: Job, *, posting: bool = False) -> Result:
    """What `error` comes to; `posting`: it answered a chat.postMessage, which a 5xx or
    a `fatal_error` may not have stopped (see MAY_HAVE_POSTED)."""
    status = error.response.status_code
    code = str(error.response.get("error") or f"http_{status}")
    if status == 429 or code == "ratelimited":
        # Pauses only the lane of this call: a channel's posts, or the workspace's updates.
        retry_after = retry_after_s(error.response.headers, default=1.0)
        return Retry(error=code, after_s=retry_after, pause_target_s=retry_after)
    if code in NEEDS_OPERATOR:
        return Retry(
            error=f"{code}: Slack refused the bot's credentials",
            after_s=300.0,
            credentials_refused=True,
        )
    if status >= 500 or code in TRANSIENT:
        # The next attempt waits out the lease for a post that did land to show, then
        # looks for it before posting again, as after a timeout.
        landed = posting and (status >= 500 or code in MAY_HAVE_POSTED)
        return Retry(error=code, ambiguous=landed)
    if code == "message_not_found" and job.kind == SLACK_MESSAGE:
        return Retry(error="message was deleted in Slack; posting it again", forget_ts=True)
    if code in PERMANENT:
        return Dead(error=code)
    if job.attempts >= MAX_UNKNOWN_ATTEMPTS:
        return Dead(error=code)
    return Retry(error=code)


class _Held(Exception):
    """A call made on the way to a post or update, in a lane other than the job's (a
    look-up, an update of a post found to have landed), that may not be made now: its
    lane is paced or paused, or Slack just answered it with a 429 (`refused`). The
    delivery tries again after `after_s`; the job's own lane is left as it is."""

    def __init__(self, lane: str, after_s: float, *, error: str, refused: bool) -> None:
        super().__init__(error)
        self.lane = lane
        self.after_s = after_s
        self.error = error
        self.refused = refused


def _limited(error: SlackApiError) -> bool:
    return bool(error.response.status_code == 429 or error.response.get("error") == "ratelimited")


class Answer(Protocol):
    """What a response_url said to an answer posted to it."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def body(self) -> str: ...


class SlackSender:
    """Posts, updates and threads the bot's messages; answers response_urls.

    `answer(url, body)` posts an answer; it raises ConnectionRefusedError when the
    answer could not leave, any other OSError when Slack may have it.
    """

    def __init__(
        self,
        client: WebClient,
        answer: Callable[[str, Mapping[str, Any]], Answer],
        *,
        on_auth: Callable[[bool], None] = lambda _ok: None,
        naming: Naming = SEPARATE,
        channel_ids: ChannelIds | None = None,
    ) -> None:
        self.client = client
        self.answer = answer
        # A channel configured by `#name` is read back and updated by its id.
        self.channel_ids = channel_ids or ChannelIds(client)
        # Texts name commands by the table's names; here they leave named as the
        # workspace types them (`/ops deploy …`).
        self.naming = naming
        self.on_auth = on_auth  # told whether Slack accepted the token (opsbot_slack_auth_ok)
        # One sender serves the process: its look-ups share these lanes.
        self.look_ups = Pacer(limits=lambda lane: LOOK_UP_LIMITS[lane])

    def send(self, job: Job) -> Result:
        result = self._send(job)
        if isinstance(result, Retry) and result.credentials_refused:
            self.on_auth(False)
        elif isinstance(result, Sent) and job.kind != SLACK_RESPONSE:
            self.on_auth(True)  # a response_url needs no token: it says nothing of it
        return result

    def _send(self, job: Job) -> Result:
        try:
            if job.kind == SLACK_MESSAGE:
                return self._message(job)
            if job.kind == SLACK_REPLY:
                return self._reply(job)
            if job.kind == SLACK_RESPONSE:
                return self._respond(job)
            return Dead(error=f"unknown delivery kind {job.kind}")
        except _Held as held:
            # Not charged to the job's own lane: the post or update was not made.
            return Retry(error=held.error, after_s=held.after_s, waiting=not held.refused)
        except SlackApiError as exc:
            return classify(exc, job)
        except (SlackClientError, OSError) as exc:
            # Reset or timed out: nothing says whether Slack got it, so the next
            # attempt waits for a late arrival and looks before it posts again.
            refused = isinstance(getattr(exc, "reason", exc), ConnectionRefusedError)
            return Retry(error=f"{type(exc).__name__}: {exc}", ambiguous=not refused)

    def _content(self, job: Job) -> dict[str, Any]:
        content = {"text": job.payload.get("text", ""), "blocks": job.payload.get("blocks")}
        return dict(self.naming.named_body(content))

    def _message(self, job: Job) -> Result:
        message = job.message
        assert message is not None
        ts, channel_id = message.ts, message.channel_id
        # A message the bot owns inside a thread: one it answers in, or its parent's.
        thread_ts: str | None = job.payload.get("thread_ts") or message.thread_ts
        if ts is None and job.attempts > 1:
            ts, channel_id = self._find_earlier(job, message.channel, thread_ts)
        if ts is not None and channel_id is not None:
            channel_id = self._recorded_id(job, channel_id)
            self._update(job, channel_id, ts)
            return Sent(ts=ts, channel_id=channel_id)
        if job.attempts > 1 and not lease_still_held("the post"):
            return _TAKEN_OVER
        try:
            response = self.client.chat_postMessage(
                channel=message.channel,
                metadata=_metadata(job),
                thread_ts=thread_ts or None,
                **self._content(job),
            )
        except SlackApiError as exc:
            return classify(exc, job, posting=True)
        return Sent(ts=response["ts"], channel_id=response["channel"])

    def _reply(self, job: Job) -> Result:
        parent = job.message
        assert parent is not None
        if parent.ts is None or parent.channel_id is None:
            return self._unposted_parent(job, parent)
        channel_id = self._recorded_id(job, parent.channel_id)
        # Under a message that itself lives in a thread (an alarm of a group): in that thread.
        thread_ts = parent.thread_ts or parent.ts
        if job.attempts > 1:
            found = self._find_in_thread(job, channel_id, thread_ts)
            if found is not None:
                self._update(job, channel_id, found)
                return Sent(ts=found, channel_id=channel_id)
            if not lease_still_held("the reply"):
                return _TAKEN_OVER
        try:
            response = self.client.chat_postMessage(
                channel=channel_id,
                thread_ts=thread_ts,
                metadata=_metadata(job),
                **self._content(job),
            )
        except SlackApiError as exc:
            return classify(exc, job, posting=True)
        return Sent(ts=response["ts"], channel_id=channel_id)

    def _unposted_parent(self, job: Job, parent: MessageRef) -> Result:
        """A reply whose message has no place in Slack: it waits while a post of that
        message is owed (a first post, or a repost after it was deleted in Slack), and
        is given up once none is. When the claim did not say (`owed` None), it waits
        as long as an unknown error is tried."""
        if parent.owed is False or (parent.owed is None and job.attempts >= MAX_UNKNOWN_ATTEMPTS):
            return Dead(error="the message this reply belongs under was never posted")
        return Retry(error=f"waiting: the message {parent.key} is not posted yet", waiting=True)

    def _update(self, job: Job, channel_id: str, ts: str) -> None:
        """chat.update of the bot's message at `ts`. Counted against the workspace's
        updates, not the job's lane when that is a channel's posts (a post found to have
        landed after all): a 429 then retries the job without pausing those posts."""
        try:
            self.client.chat_update(channel=channel_id, ts=ts, **self._content(job))
        except SlackApiError as exc:
            if job.paced_by == SLACK_UPDATES or not _limited(exc):
                raise
            after_s = retry_after_s(exc.response.headers, default=1.0)
            raise _Held(
                SLACK_UPDATES, after_s, error="chat.update answered ratelimited", refused=True
            ) from exc

    def _respond(self, job: Job) -> Result:
        body = self.naming.named_body(job.payload["body"])
        response = self.answer(job.payload["response_url"], body)
        if response.status_code == 200:
            return Sent()
        if response.status_code == 429:
            retry_after = retry_after_s(response.headers, default=1.0)
            return Retry(
                error="response_url answered 429", after_s=retry_after, pause_target_s=retry_after
            )
        if response.status_code >= 500:
            return Retry(error=f"response_url answered {response.status_code}")
        # response_url expires after 30 minutes or 5 uses: nothing more to do.
        return Dead(error=f"response_url answered {response.status_code}: {response.body}")

    def _find_earlier(
        self, job: Job, channel: str, thread_ts: str | None
    ) -> tuple[str | None, str | None]:
        """After an attempt that may have reached Slack: where it landed (ts, channel
        id), or (None, None) when it did not or cannot be read back."""
        channel_id = self._readable(job, channel)
        if channel_id is None:
            return None, None
        if thread_ts:
            return self._find_in_thread(job, channel_id, str(thread_ts)), channel_id
        return self._find_in_channel(job, channel_id)

    def _readable(self, job: Job, channel: str) -> str | None:
        """The id to read `channel` back by, or None: it cannot be read (logged), and
        the message is posted without the check."""
        try:
            channel_id = self._id_of(job, channel)
        except SlackApiError as exc:
            if answers_later(exc):
                raise  # the attempt before may have landed: look again later, never post blind
            listing = f"conversations.list answered {exc.response.get('error')}"
            _cannot_read_back(job, f"channel {channel}", listing)
            return None
        if channel_id is None:
            _cannot_read_back(job, f"channel {channel}", "no channel has that name")
        return channel_id

    def _recorded_id(self, job: Job, channel: str) -> str:
        """The id of the channel a message was recorded in: a `#name` recorded before
        ids were (chat.update refuses names) is looked up; else kept for Slack to judge."""
        try:
            return self._id_of(job, channel) or channel
        except SlackApiError as exc:
            if answers_later(exc):
                raise
            return channel

    def _id_of(self, job: Job, channel: str) -> str | None:
        """`channel_ids.id_of`: its conversations.list is not paced here (the ids are
        listed at most once a minute), but a 429 it draws holds this delivery only."""
        try:
            return self.channel_ids.id_of(channel)
        except SlackApiError as exc:
            self._raise_if_limited(job, SLACK_LIST, exc)
            raise

    def _looked_up(self, job: Job, lane: str, read: Callable[..., Any], **args: Any) -> Any:
        """`read(**args)`, a look-up paced in `lane`. Raises _Held when the lane
        must wait (its pace, or a pause after a 429) or Slack answers it with a 429."""
        wait = self.look_ups.wait_s(lane)
        if wait > 0 or not self.look_ups.take(lane):
            raise _Held(
                lane,
                max(wait, MIN_LOOK_UP_WAIT_S),
                error=f"waiting: Slack look-ups ({lane}) are paced",
                refused=False,
            )
        try:
            return read(**args)
        except SlackApiError as exc:
            self._raise_if_limited(job, lane, exc)
            raise

    def _raise_if_limited(self, job: Job, lane: str, exc: SlackApiError) -> None:
        """On a 429 answered to a look-up: pause its lane, and raise _Held."""
        if not _limited(exc):
            return
        method = METHODS[lane]
        after_s = retry_after_s(exc.response.headers, default=1.0)
        self.look_ups.pause(lane, after_s)
        log.warning(
            "Slack look-ups %s paused for %.1f s: %s answered delivery %s with a 429",
            lane,
            after_s,
            method,
            job.id,
            extra={"delivery": job.id, "kind": job.kind, "lane": lane, "attempts": job.attempts},
        )
        raise _Held(lane, after_s, error=f"{method} answered ratelimited", refused=True) from exc

    def _find_in_channel(self, job: Job, channel_id: str) -> tuple[str | None, str | None]:
        """After an attempt that may have reached Slack, look for it before posting again."""
        found = self._look(
            job,
            f"channel {channel_id}",
            SLACK_HISTORY,
            self.client.conversations_history,
            channel=channel_id,
        )
        if found is None:
            return None, None
        item, page = found
        return str(item["ts"]), str(page.get("channel") or channel_id)

    def _find_in_thread(self, job: Job, channel_id: str, thread_ts: str) -> str | None:
        where = f"thread {thread_ts} in {channel_id}"
        found = self._look(
            job,
            where,
            SLACK_REPLIES,
            self.client.conversations_replies,
            channel=channel_id,
            ts=thread_ts,
        )
        return None if found is None else str(found[0]["ts"])

    def _look(
        self, job: Job, where: str, lane: str, read: Callable[..., Any], **listing: Any
    ) -> tuple[dict[str, Any], Any] | None:
        """The message in `listing` (conversations.history or .replies) that carries
        `job`'s mark, and the page it was on; None when it is not there or cannot be
        read (logged). Reads what was written since a little before the delivery,
        page after page: a thread lists oldest first, so its newest are last."""
        oldest = _oldest(job)
        cursor = None
        for _ in range(LOOK_PAGES):
            try:
                page = self._looked_up(
                    job,
                    lane,
                    read,
                    **listing,
                    include_all_metadata=True,
                    limit=LOOK_PAGE,
                    oldest=oldest,
                    cursor=cursor,
                )
            except SlackApiError as exc:
                if answers_later(exc):
                    raise  # the attempt before may have landed: look again later, never post blind
                _cannot_read_back(job, where, str(exc.response.get("error")))
                return None
            for item in page.get("messages") or []:
                if _carries(item, job, self.client):
                    return item, page
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        _cannot_read_back(job, where, f"over {LOOK_PAGES * LOOK_PAGE} messages since the delivery")
        return None


def _oldest(job: Job) -> str | None:
    """Slack's `oldest` for the look: a little before the delivery was written, as
    Slack writes a ts; None (from the start) when that is not known."""
    if job.created_at is None:
        return None
    return f"{(job.created_at - LOOK_BACK_MARGIN).timestamp():.6f}"


def _cannot_read_back(job: Job, where: str, why: str) -> None:
    # Slack will never let the bot look (a scope, the channel): not posting would
    # lose the message, so it is posted, at the risk of a double.
    log.warning(
        "delivery %s: cannot read back %s (%s): posting without the check",
        job.id,
        where,
        why,
        extra={"delivery": job.id, "kind": job.kind, "attempts": job.attempts},
    )
