"""The floor: a slack-bolt app that only acknowledges, served the way opsbot serves Bolt.

Same ASGI server and settings as `opsbot serve` (`handlers.server.server_config`:
uvicorn with opsbot's protocol, keep-alive and limits, no access log), the same
Starlette route running Bolt's sync `dispatch` in the threadpool (as
`handlers/slack_events.py` does), the same Bolt options (a client for the
Slack emulator, no token verification at start) and the same logging set-up.
It registers a listener that only acks for every kind in `bench.request_kinds.KINDS`.

    SLACK_SIGNING_SECRET=... SLACK_BOT_TOKEN=... SLACK_API_URL=... \
        python -m bench.bare_app --port 3001
"""

from __future__ import annotations

import argparse
import logging
import os

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
from bot.log import configure_logging
from bot.settings import Settings
from handlers.server import server_config


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


def create_app(bolt: App) -> Starlette:
    async def events(request: Request) -> Response:
        body = await request.body()
        answer = await run_in_threadpool(bolt.dispatch, to_bolt_request(request, body))
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
    args = root.parse_args()
    secret = os.environ["SLACK_SIGNING_SECRET"]
    configure_logging("INFO", [secret])
    bolt = build_bolt_app(
        signing_secret=secret,
        token=os.environ["SLACK_BOT_TOKEN"],
        api_url=os.environ["SLACK_API_URL"],
    )
    config = server_config(create_app(bolt), Settings(), host=args.host, port=args.port)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
