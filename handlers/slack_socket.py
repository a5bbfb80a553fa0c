"""Slack over Socket Mode: the Bolt app of POST /slack/events, over a websocket opsbot opens.

With SLACK_APP_TOKEN (xapp-…) set, opsbot asks apps.connections.open for a
websocket URL and takes Slack's commands, clicks and events as envelopes on it,
acknowledging each by its envelope_id: slack_sdk's builtin client (no
dependency), under Bolt's own Socket Mode adapter functions, with the one Bolt
app the HTTP route uses (the same listeners and middleware; the signature check
is Bolt's, skipped for socket requests, which come over a connection opsbot
opened with its token).

Connections are kept here, not by the client's own reconnection (which retries
a failed attempt every ping interval, forever at the same pace): a connection
lost or never made is opened again at once, then after each failed attempt
twice as long as the last wait, from the ping interval up to
OPSBOT_SLACK_SOCKET_BACKOFF_MAX_S. A connection Slack asks to leave
(`disconnect`) is replaced by the client itself; one that died silently is
found when four pings in a row go unanswered.

Nothing owed to Slack rides the socket but acknowledgements: answers and
messages go out through the outbox over the Web API, so they wait there while
the socket is down. An event Slack could not deliver meanwhile comes again
(retry_attempt) and is deduplicated by its event_id like over HTTP.

Stopping takes no new envelope and lets those in hand be acknowledged on the
still open connection (waiting up to OPSBOT_SLACK_FORM_WAIT_S and 3 s more), then
closes it. An envelope received meanwhile is left unacknowledged and not run:
Slack sends an event again, and a command or click shows its person a timeout.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from queue import Empty, Queue
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.socket_mode.internals import run_bolt_app, send_response
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from bot import json_depth
from bot.runtime import Runtime
from handlers.command_text import as_named

log = logging.getLogger(__name__)

KINDS = frozenset({"slash_commands", "interactive", "events_api"})
ENVELOPE_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")  # logged only when it looks like Slack's
MAX_MESSAGE_CHARS = 1024 * 1024  # as POST /slack/events bounds a body (OPSBOT_MAX_BODY_BYTES)
# Stopping waits for the envelopes in hand this much longer than a form's wait for its
# outcome, the longest a listener holds its acknowledgement.
ACK_DRAIN_MARGIN_S = 3.0


def backoff_s(failures: int, *, first_s: float, max_s: float) -> float:
    """The wait before the next attempt after `failures` failed ones in a row.

    None failed: at once. Then `first_s`, doubling each time up to `max_s`, each
    drawn between half of that and all of it, so that instances cut off together
    do not all come back at the same moment.
    """
    if failures <= 0:
        return 0.0
    ceiling = min(max_s, first_s * 2.0 ** min(failures - 1, 30))
    return float(ceiling * random.uniform(0.5, 1.0))  # jitter, not a secret


def refusal(message: dict[str, Any]) -> str | None:
    """Why an envelope is not handed to Bolt (None: it is one Bolt can take)."""
    if not isinstance(message.get("envelope_id"), str) or not message["envelope_id"]:
        return "no envelope_id"
    if message.get("type") not in KINDS:
        return "an envelope type opsbot does not take"
    if not isinstance(message.get("payload"), dict):
        return "a payload that is not an object"
    return None


def _unread(queue: Queue[str | None]) -> list[str]:
    """The envelope ids of the envelopes still queued (all accepted), taken off the queue."""
    ids: list[str] = []
    while True:
        try:
            message = queue.get_nowait()
        except Empty:
            return ids
        fields = json.loads(message) if message is not None else {}
        if fields.get("type") in KINDS:
            envelope_id = fields["envelope_id"]
            ids.append(envelope_id if ENVELOPE_ID.match(envelope_id) else "-")


class _Client(SocketModeClient):
    """slack_sdk's client, refusing at the edge what Bolt should not parse or see."""

    def __init__(self, *, socket: SlackSocket, **kwargs: Any) -> None:
        self._owner = socket
        super().__init__(**kwargs)

    def enqueue_message(self, message: str) -> None:
        if self._owner.accepts(message):
            super().enqueue_message(message)


class SlackSocket:
    """One Socket Mode connection to Slack, kept open, feeding `bolt`."""

    def __init__(self, runtime: Runtime, bolt: App, *, app_token: str) -> None:
        settings = runtime.settings
        self._runtime = runtime
        self._bolt = bolt
        self._ping_s = settings.slack_socket_ping_s
        self._backoff_max_s = max(settings.slack_socket_backoff_max_s, self._ping_s)
        self._metrics = runtime.metrics
        self._stopped = threading.Event()
        self._draining = threading.Event()  # no new envelope is taken
        self._drain_s = settings.slack_form_wait_s + ACK_DRAIN_MARGIN_S
        self._in_hand: set[str] = set()  # envelope ids handled, not yet acknowledged
        self._in_hand_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._was_connected = False  # the connection this loop last opened is (was) open
        self._ever_connected = False
        self.attempts = 0  # attempts to open a connection, ever
        self.client = _Client(
            socket=self,
            app_token=app_token,
            logger=logging.getLogger("opsbot.slack.socket"),
            web_client=runtime.slack_client,
            auto_reconnect_enabled=False,  # _keep_connected does, with backoff
            ping_interval=self._ping_s,
        )
        self.client.socket_mode_request_listeners.append(self._handle)  # type: ignore[arg-type]
        self._metrics.slack_socket(False)

    @property
    def connected(self) -> bool:
        return bool(self.client.is_connected())

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._keep_connected, name="slack-socket", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Take no new envelope, acknowledge those in hand on the open connection, then close it.

        slack_sdk's close() disconnects before it waits for its workers: an envelope still
        handled then has its acknowledgement written to a closed connection, its work done
        and Slack told it failed.
        """
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(10)
        client = self.client
        self._draining.set()
        client.closed = True  # its processor hands no more queued envelopes to the workers
        client.message_queue.put(None)  # wakes the processor from its wait for one
        client.message_processor.shutdown()  # type: ignore[no-untyped-call]
        for envelope_id in _unread(client.message_queue):
            log.info(
                "Slack Socket Mode: stopping; envelope %s left unacknowledged, not run", envelope_id
            )
        # The workers' own shutdown waits without a bound: waited for here, up to the budget.
        workers = threading.Thread(
            target=client.message_workers.shutdown, name="slack-socket-drain", daemon=True
        )
        workers.start()
        workers.join(self._drain_s)
        if workers.is_alive():
            with self._in_hand_lock:
                in_hand = sorted(self._in_hand)
            log.warning(
                "Slack Socket Mode: envelopes %s still handled after %.1f s; closing under them",
                ", ".join(in_hand) or "-",
                self._drain_s,
            )
        client.close()
        self._metrics.slack_socket(False)

    # -- the connection ------------------------------------------------------------

    def _keep_connected(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            if self.connected:
                self._stopped.wait(min(self._ping_s, 1.0))
                continue
            self._metrics.slack_socket(False)
            if self._was_connected:
                log.warning("Slack Socket Mode: connection lost; opening another")
                self._was_connected = False
            wait_s = backoff_s(failures, first_s=self._ping_s, max_s=self._backoff_max_s)
            if self._stopped.wait(wait_s):
                return
            self.attempts += 1
            try:
                self.client.connect_to_new_endpoint()
            except Exception as exc:  # Slack refused, or could not be reached
                log.warning(
                    "Slack Socket Mode: apps.connections.open failed (%s); attempt %d",
                    type(exc).__name__,
                    failures + 1,
                )
            if self.connected:
                if self._ever_connected:
                    self._metrics.slack_socket_reconnects.inc()
                self._ever_connected = True
                log.info(
                    "Slack Socket Mode: connected (session %s, attempt %d)",
                    self.client.session_id(),
                    self.attempts,
                )
                failures = 0
                self._was_connected = True
                self._metrics.slack_socket(True)
            else:
                failures += 1
                self._metrics.slack_socket_connect_failures.inc()

    # -- the envelopes -----------------------------------------------------------------

    def accepts(self, message: str) -> bool:
        """Whether a text frame goes on to the client's parsing and Bolt (else: logged, counted)."""
        parsed: Any = None
        if self._draining.is_set():
            log.info(
                "Slack Socket Mode: stopping; a message received is left unacknowledged, not run"
            )
            return False
        if len(message) > MAX_MESSAGE_CHARS:
            why: str | None = "too long"
        else:
            try:
                json_depth.check_depth(message)
                parsed = json.loads(message)
            except json_depth.JsonTooDeep:
                why = "nested too deep"
            except ValueError:
                why = "not JSON"
            else:
                if not isinstance(parsed, dict):
                    why = "not a JSON object"
                elif parsed.get("type") in ("hello", "disconnect"):
                    why = None  # the client's own business
                else:
                    why = refusal(parsed)
        if why is None:
            return True
        fields = parsed if isinstance(parsed, dict) else {}
        envelope_id, kind = fields.get("envelope_id"), fields.get("type")
        self._metrics.slack_socket_refused.inc()
        log.warning(
            "Slack Socket Mode: refused a message (%s; envelope %s, type %s)",
            why,
            envelope_id if isinstance(envelope_id, str) and ENVELOPE_ID.match(envelope_id) else "-",
            kind if kind in KINDS else "-",
        )
        return False

    def _handle(self, client: SocketModeClient, request: SocketModeRequest) -> None:
        started = time.perf_counter()
        envelope_id = request.envelope_id if ENVELOPE_ID.match(request.envelope_id) else "-"
        with self._in_hand_lock:
            self._in_hand.add(envelope_id)
        try:
            with self._runtime.after_ack.acknowledging():
                response = as_named(
                    self._runtime.config.commands.naming, run_bolt_app(self._bolt, request)
                )
                send_response(client, request, response, started)
        finally:
            with self._in_hand_lock:
                self._in_hand.discard(envelope_id)
        self._metrics.slack_ack.observe(time.perf_counter() - started)
