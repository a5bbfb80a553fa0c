"""The floor: a slack-bolt app that only acknowledges, served the way opsbot serves Bolt.

Same ASGI server and settings as `opsbot serve` (`handlers.server.server_config`:
uvicorn with opsbot's protocol, keep-alive and limits, no access log), the same
Starlette route running Bolt's sync `dispatch` in the threadpool (as
`handlers/slack_events.py` does), the same Bolt options (a client for the
Slack emulator, no token verification at start) and the same logging set-up.
It registers a listener that only acks for every kind in `bench.request_kinds.KINDS`,
run as Bolt runs it by default (in a thread of Bolt's, the request's thread
waiting for the ack): a bare app as a team would write it.

With `--work-ms N` each listener also leaves work behind its ack, the way
opsbot's do: `N` ms of CPU (standing for a click's statements) and then an
answer POSTed to the request's response_url, run by opsbot's own pool
(bot/after_ack.py). Where the ack is made (issue 19.2: does acking on the
event loop remove the contention between acks and the work behind them?):

- `--style threads`: Bolt's sync `App` dispatched in Starlette's threadpool,
  each listener run in the request's own thread (`process_before_response`);
- `--style loop`: the same app dispatched on the event loop, as opsbot
  dispatches buttons and commands (handlers/slack_events.py);
- `--style async`: Bolt's `AsyncApp` on the event loop.

    SLACK_SIGNING_SECRET=... SLACK_BOT_TOKEN=... SLACK_API_URL=... \
        python -m bench.bare_app --port 3001 [--style loop --work-ms 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from slack_bolt import Ack, App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_sdk import WebClient
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.request_kinds import KINDS
from bot.after_ack import AfterAck
from bot.log import configure_logging
from bot.settings import Settings
from handlers.server import server_config

if TYPE_CHECKING:
    # Bolt's async side needs aiohttp, which opsbot does not depend on: imported
    # only for `--style async` (and for mypy).
    from slack_bolt.async_app import AsyncApp


# Where a working app (--work-ms) acks; see the docstring.
STYLES = ("threads", "loop", "async")


def _only_ack(ack: Ack) -> None:
    ack()


def build_bolt_app(*, signing_secret: str, token: str, api_url: str) -> App:
    app = App(
        signing_secret=signing_secret,
        client=WebClient(token=token, base_url=api_url),
        token_verification_enabled=False,
        logger=logging.getLogger("bare.slack"),
    )
    for kind in KINDS:
        if kind.command is not None:
            app.command(kind.command)(_only_ack)
        elif kind.action_id is not None:
            app.action(kind.action_id)(_only_ack)
    return app


def _work_behind(work_ms: float, http: httpx.Client) -> Callable[[dict[str, Any]], None]:
    """What a listener leaves behind its ack: CPU for `work_ms`, then an answer."""

    def work(body: dict[str, Any]) -> None:
        until = time.thread_time() + work_ms / 1000
        while time.thread_time() < until:
            pass
        url = body.get("response_url")
        if url:
            http.post(url, json={"text": "done", "response_type": "ephemeral"})

    return work


def build_working_app(
    *, signing_secret: str, token: str, api_url: str, lane: AfterAck, work_ms: float
) -> App:
    """A sync app whose listeners ack, then queue `work_ms` of work in `lane` (as opsbot's do)."""
    app = App(
        signing_secret=signing_secret,
        client=WebClient(token=token, base_url=api_url),
        token_verification_enabled=False,
        logger=logging.getLogger("bare.slack"),
        process_before_response=True,
    )
    work = _work_behind(work_ms, httpx.Client(timeout=30))

    def listener(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        lane.run("bench work", lambda: work(body), response_url=None)

    for kind in KINDS:
        if kind.command is not None:
            app.command(kind.command)(listener)
        elif kind.action_id is not None:
            app.action(kind.action_id)(listener)
    return app


def build_async_app(
    *, signing_secret: str, token: str, api_url: str, lane: AfterAck, work_ms: float
) -> AsyncApp:
    """Bolt's AsyncApp acking on the event loop; the same work handed to the same pool."""
    from slack_bolt.async_app import AsyncAck, AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    app = AsyncApp(
        signing_secret=signing_secret,
        client=AsyncWebClient(token=token, base_url=api_url),
        logger=logging.getLogger("bare.slack"),
    )
    work = _work_behind(work_ms, httpx.Client(timeout=30))

    async def listener(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        if work_ms > 0:
            lane.run("bench work", lambda: work(body), response_url=None)

    for kind in KINDS:
        if kind.command is not None:
            app.command(kind.command)(listener)
        elif kind.action_id is not None:
            app.action(kind.action_id)(listener)
    return app


def create_async_app(bolt: AsyncApp) -> Starlette:
    from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler

    handler = AsyncSlackRequestHandler(bolt)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def readyz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ready"})

    return Starlette(
        routes=[
            Route("/slack/events", events, methods=["POST"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )


def create_app(bolt: App, *, on_loop: bool = False) -> Starlette:
    """Bolt's sync `dispatch` in Starlette's threadpool, or with `on_loop` on the event loop."""

    async def events(request: Request) -> Response:
        bolt_request = to_bolt_request(request, await request.body())
        if on_loop:
            answer = bolt.dispatch(bolt_request)
        else:
            answer = await run_in_threadpool(bolt.dispatch, bolt_request)
        return to_starlette_response(answer)

    async def readyz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ready"})

    return Starlette(
        routes=[
            Route("/slack/events", events, methods=["POST"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )


def main() -> int:
    root = argparse.ArgumentParser(prog="python -m bench.bare_app", description=__doc__)
    root.add_argument("--host", default="127.0.0.1")
    root.add_argument("--port", type=int, required=True)
    root.add_argument("--style", choices=STYLES, default="threads")
    root.add_argument("--work-ms", type=float, default=0.0, help="CPU ms of work behind each ack")
    args = root.parse_args()
    secret = os.environ["SLACK_SIGNING_SECRET"]
    configure_logging("INFO", [secret])
    slack = {
        "signing_secret": secret,
        "token": os.environ["SLACK_BOT_TOKEN"],
        "api_url": os.environ["SLACK_API_URL"],
    }
    app: Starlette
    if args.style == "async":
        app = create_async_app(build_async_app(**slack, lane=AfterAck(), work_ms=args.work_ms))
    elif args.work_ms > 0:
        app = create_app(
            build_working_app(**slack, lane=AfterAck(), work_ms=args.work_ms),
            on_loop=args.style == "loop",
        )
    else:
        app = create_app(build_bolt_app(**slack))
    config = server_config(app, Settings(), host=args.host, port=args.port)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
