"""POST /slack/events: slash commands, buttons and events, through Slack Bolt.

The route verifies the signature on the raw body before anything parses it
(Bolt checks it again): an unsigned request is answered 401 whatever it holds,
a signed one Bolt cannot parse 400. Bolt answers within Slack's three
seconds: each listener acks, hands its work to the pool behind acks
(bot/after_ack.py) and returns, and Bolt answers then. Events API
deliveries are deduplicated by event_id before any listener sees them.

A button's or a command's dispatch runs on the event loop, everything else's
in Starlette's threadpool (`SlackBolt.dispatch` says why).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_bolt.middleware import Middleware
from slack_sdk.signature import SignatureVerifier
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import json_depth
from bot.inbound.receipts import SlackEventReceipts
from bot.inbound.replay import ReplayGuard
from bot.runtime import Runtime
from bot.slack_text import unescape
from bot.typed import has_control
from handlers import (
    approvals,
    changes,
    dbroles,
    deploys,
    flags,
    home,
    incidents,
    modals,
    oncall,
    ops_status,
    opsbot_command,
)
from handlers.command_text import CONTROL_REFUSAL, as_named
from handlers.routing import Routes, routed, routed_name

log = logging.getLogger(__name__)

# Slack's check takes a signature while our clock is within five minutes of its
# timestamp, so until timestamp + 300 s; a timestamp may be up to 300 s ahead of our
# clock when first seen (ours behind Slack's). Remembered for both, a signature is
# refused a second time for as long as the check would take it.
REPLAY_MEMORY_S = 2 * 300.0

# How an opening bracket may appear in a body, as JSON or in a form field (lowered).
_OPENINGS = (b"[", b"{", b"%5b", b"%7b")
# What Bolt's parsing of a body raises when the body is JSON of another shape than a
# Slack request's (a list, a number, `"team": 5`): it reads fields without looking.
_SHAPE_ERRORS = (ValueError, TypeError, AttributeError, LookupError)


@dataclass(frozen=True)
class SlackBolt:
    """The one Bolt app of this process, and where an HTTP request's dispatch runs."""

    app: App
    admission: Admission
    # A dispatch on the event loop that takes this long held every other request:
    # it is logged with the action or command, and given to `on_stall` (a metric).
    stall_s: float = 0.25
    on_stall: Callable[[str], None] = lambda kind: None

    async def dispatch(self, request: BoltRequest) -> BoltResponse:
        """Bolt's answer to `request`: on the event loop for a button or a command.

        Their listeners only ack and queue (handlers/routing.py), so the dispatch
        never waits there. Handing it to a thread and back cost more than the
        dispatch itself, and in a flood those threads took turns at the
        interpreter with the event loop and the work behind the acks: acks were
        slower and the process busier (docs/benchmarks.md, "Acknowledging on the
        event loop"). Views, options and events may wait (on the database, AWS,
        a submission's outcome), and so does any request until Bolt knows who
        its token is (auth.test, asked on the first request and again after a
        failure): those go to a thread.
        """
        if self.admission.authorized and routed(request.body):
            started = time.perf_counter()
            answer = self.app.dispatch(request)
            held_s = time.perf_counter() - started
            if held_s >= self.stall_s:
                self._stalled(request.body, held_s)
            return answer
        return await run_in_threadpool(self.app.dispatch, request)

    def _stalled(self, body: dict[str, Any], held_s: float) -> None:
        # Nothing enforces that a routed listener never waits: this is how a
        # listener that does is found (its id), and counted.
        kind, name = routed_name(body)
        log.warning(
            "the dispatch of %s %r held the event loop %.3f s: its listener must only ack "
            "and queue (handlers/routing.py)",
            kind,
            name,
            held_s,
            extra={"kind": kind, "listener": name, "held_s": round(held_s, 3)},
        )
        self.on_stall(kind)


def build_bolt_app(runtime: Runtime) -> SlackBolt | None:
    """The one Bolt app of this process: POST /slack/events and Socket Mode both feed it."""
    settings = runtime.settings
    if not settings.slack_inbound_enabled or runtime.slack_client is None:
        return None
    secret = settings.slack_signing_secret
    app = App(
        # The HTTP route checks Slack's signature on the raw body before Bolt parses
        # anything (`_admitted`), and Socket Mode carries none: Bolt need not check again.
        signing_secret=secret.get_secret_value() if secret is not None else "",
        request_verification_enabled=False,
        client=runtime.slack_client,
        # Starting must not depend on Slack answering auth.test.
        token_verification_enabled=False,
        logger=logging.getLogger("opsbot.slack"),
        # Each listener acks, hands its work to the pool behind acks and returns: run
        # it in the request's thread and answer then, rather than in a listener thread
        # of Bolt's while the request's thread polls for the ack every 10 ms.
        process_before_response=True,
    )
    receipts = SlackEventReceipts(sessions=runtime.sessions, clock=runtime.clock)
    admission = Admission(
        receipts,
        ReplayGuard(window_s=REPLAY_MEMORY_S),
        refused=lambda reason: runtime.metrics.slack_admission_refused.labels(reason).inc(),
    )
    app.use(admission)

    routes = Routes(
        app, on_unhandled=lambda kind: runtime.metrics.slack_unhandled.labels(kind).inc()
    )
    # Before the commands' own listeners: a bare command opens its modal.
    modals.register(routes, runtime)
    opsbot_command.register(routes, runtime)
    incidents.register(routes, runtime)
    changes.register(routes, runtime)
    oncall.register(routes, runtime, receipts)
    deploys.register(routes, runtime)
    flags.register(routes, runtime)
    dbroles.register(routes, runtime)
    approvals.register(routes, runtime)
    ops_status.register(routes, runtime)
    home.register(routes, runtime)
    return SlackBolt(
        app,
        admission,
        stall_s=settings.loop_stall_warn_s,
        on_stall=lambda kind: runtime.metrics.slack_loop_stalls.labels(kind).inc(),
    )


class Admission(Middleware):
    """What every request passes after Bolt verified its signature, before any listener.

    A signature this instance saw within five minutes is refused (bot/inbound/replay.py
    says what that leaves open); an event Slack sends again (by its event id)
    is answered and not processed; a slash command's text is unescaped, and
    refused with an answer when it holds a control character. One
    middleware object, called directly: a function middleware costs Bolt a
    build of every injectable argument on each request.
    """

    def __init__(
        self,
        receipts: SlackEventReceipts,
        replays: ReplayGuard,
        *,
        refused: Callable[[str], None] = lambda _reason: None,
    ) -> None:
        self.receipts = receipts
        self.replays = replays
        self.refused = refused  # counts a refusal by its reason
        # Whether a request other than an event has passed Bolt's authorization: Bolt
        # asked Slack who its token is (auth.test) and answers from memory from then on.
        # (Some events pass without that question: they do not count.)
        self.authorized = False

    def process(
        self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        body = req.body
        if body.get("type") == "event_callback":
            # Events are left to the event-id deduplication, which answers Slack's
            # retries without processing them.
            event_id = body.get("event_id")
            if event_id and not self.receipts.claim(str(event_id)):
                retry = req.headers.get("x-slack-retry-num", ["0"])[0]
                log.info(
                    "event %r (retry %r) is a duplicate: answered, not processed", event_id, retry
                )
                return BoltResponse(status=200, body="")
            return next()
        if req.context.authorize_result is not None:
            self.authorized = True
        signature = req.headers.get("x-slack-signature", [""])[0]
        if signature and not self.replays.first_time(signature):
            log.warning("refused a replayed Slack request", extra=_ids(body))
            self.refused("replayed")
            return BoltResponse(status=401, body="replayed request")
        # Slack sends a slash command's text with &, < and > as entities. Everything
        # inside opsbot holds the characters the person typed (PagerDuty gets them as
        # such) and escapes once on the way out to Slack.
        if body.get("command") and isinstance(body.get("text"), str):
            body["text"] = unescape(body["text"])
            if has_control(body["text"]):
                # Refused before any listener: nothing is queued, nothing reaches the database.
                log.info(
                    "refused %s: its text holds a control character",
                    body.get("command"),
                    extra=_ids(body),
                )
                self.refused("control_character")
                return BoltResponse(status=200, body={"text": CONTROL_REFUSAL})
        return next()


def _ids(body: dict[str, Any]) -> dict[str, str]:
    """Who sent a request, for its log line: a command names its sender at the top, an
    interaction in `user`."""
    user, team = body.get("user"), body.get("team")
    user_id = body.get("user_id") or (user.get("id") if isinstance(user, dict) else None)
    team_id = body.get("team_id") or (team.get("id") if isinstance(team, dict) else None)
    return {"slack_user": str(user_id or "?")[:40], "slack_team": str(team_id or "?")[:40]}


def _too_deep(body: bytes) -> str | None:
    """Why the JSON Bolt may parse (the body itself, or its form field `payload`) is refused.

    Bolt parses the body as JSON when its type says so or it starts with "{",
    else the field `payload` when there is one. Both are checked, whatever the
    body claims to be. A bracket in a form field is itself or percent-encoded,
    so a body with no more of those than the limit holds nothing deeper,
    whatever it decodes to: nearly every request stops there.
    """
    lowered = body.lower()
    if sum(lowered.count(opening) for opening in _OPENINGS) <= json_depth.MAX_DEPTH:
        return None
    text = body.decode("utf-8", "replace")
    documents = [text]
    if "payload" in text:
        documents.append(dict(parse_qsl(text, keep_blank_values=True)).get("payload") or "")
    try:
        for document in documents:
            json_depth.check_depth(document)
    except json_depth.JsonTooDeep as exc:
        return str(exc)
    return None


def _admitted(verifier: SignatureVerifier, request: Request, body: bytes) -> BoltRequest | Response:
    """`body` as Bolt's request, or the answer that refuses it.

    The signature is checked on the raw body before anything parses it (but for a
    body of a certificate check's few dozen bytes), so an unsigned request is
    answered 401 whatever it holds; a signed one that is nested too deep or not of a
    Slack request's shape is answered 400.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        # Slack signs UTF-8 text (slack_sdk verifies it as such): whatever the
        # headers say, such a body is no Slack request.
        return _refusal(request, 400, "body is not a Slack request", why="not UTF-8")
    if _is_ssl_check(text):
        return Response(status_code=200)
    if not _signed(verifier, request, text):
        return _refusal(request, 401, "invalid request", why="no valid signature")
    too_deep = _too_deep(body)
    if too_deep is not None:
        return _refusal(request, 400, too_deep, why=too_deep)
    try:
        return to_bolt_request(request, body)
    except _SHAPE_ERRORS as exc:
        why = f"Bolt cannot parse it ({type(exc).__name__})"
        return _refusal(request, 400, "body is not a Slack request", why=why)


_SSL_CHECK_MAX_CHARS = 256


def _is_ssl_check(text: str) -> bool:
    """Slack's check of a slash command URL's certificate: unsigned, and answered 200 with
    nothing done. Only a form of `ssl_check=1` and at most a `token` is one: anything else
    (a `payload` beside it) must be signed."""
    if not text.startswith(("ssl_check=", "token=")):  # every other request, at no cost
        return False
    # Slack's is a few dozen bytes: a larger body is parsed only once it is signed, so an
    # unsigned one never costs the event loop more than its signature check.
    if len(text) > _SSL_CHECK_MAX_CHARS:
        return False
    try:
        fields = parse_qsl(text, keep_blank_values=True, max_num_fields=2)
    except ValueError:  # more than two fields
        return False
    names = [name for name, _ in fields]
    return (
        ("ssl_check", "1") in fields
        and set(names) <= {"ssl_check", "token"}
        and len(names) == len(set(names))
    )


def _signed(verifier: SignatureVerifier, request: Request, text: str) -> bool:
    """Whether `text` holds Slack's signature, under the one timestamp and signature sent.

    Headers sent twice are refused: Bolt, which checks again, reads the other copy.
    """
    timestamps = request.headers.getlist("x-slack-request-timestamp")
    signatures = request.headers.getlist("x-slack-signature")
    if len(timestamps) != 1 or len(signatures) != 1:
        return False
    try:
        return verifier.is_valid(text, timestamps[0], signatures[0])
    except ValueError:  # a timestamp that is not a number
        return False


def _refusal(request: Request, status: int, message: str, *, why: str) -> Response:
    """The answer to a refused request, and one line that says why and never what it held."""
    content_type = request.headers.get("content-type", "")[:100]
    log.warning(
        "refused a Slack request (%d): %s",
        status,
        why,
        extra={"status": status, "reason": why, "content_type": content_type},
    )
    return JSONResponse({"status": status, "message": message}, status_code=status)


def routes(runtime: Runtime, bolt: SlackBolt | None) -> list[Route]:
    """POST /slack/events over `bolt` (build_bolt_app's), when a signing secret verifies it."""
    secret = runtime.settings.slack_signing_secret
    verifier = None
    if secret is None:
        bolt = None
    elif bolt is not None:
        verifier = SignatureVerifier(secret.get_secret_value())

    async def events(request: Request) -> Response:
        if bolt is None or verifier is None:
            if runtime.settings.slack_socket_mode:
                return JSONResponse(
                    {"error": "Slack reaches this opsbot over Socket Mode (SLACK_APP_TOKEN)"},
                    status_code=404,
                )
            return JSONResponse(
                {"error": "Slack is not configured: set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN"},
                status_code=503,
            )
        started = time.perf_counter()
        with runtime.after_ack.acknowledging():
            admitted = _admitted(verifier, request, await request.body())
            if isinstance(admitted, Response):
                return admitted
            answer = await bolt.dispatch(admitted)
            answer = as_named(runtime.config.commands.naming, answer)
        response = to_starlette_response(answer)
        runtime.metrics.slack_ack.observe(time.perf_counter() - started)
        return response

    return [Route("/slack/events", events, methods=["POST"])]
