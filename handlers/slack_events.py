"""POST /slack/events: slash commands, buttons and events, through Slack Bolt.

Bolt verifies the signature on the raw body and answers within Slack's three
seconds; listeners ack first and finish their work afterwards. Bolt's sync app
runs in a worker thread so the event loop never waits on it.
"""

from __future__ import annotations

import logging

from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.runtime import Runtime
from handlers import approvals, deploys, opsbot_command

log = logging.getLogger(__name__)


def build_bolt_app(runtime: Runtime) -> App | None:
    settings = runtime.settings
    if not settings.slack_inbound_enabled or runtime.slack_client is None:
        return None
    assert settings.slack_signing_secret is not None
    app = App(
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        client=runtime.slack_client,
        # Starting must not depend on Slack answering auth.test.
        token_verification_enabled=False,
        logger=logging.getLogger("opsbot.slack"),
    )
    opsbot_command.register(app, runtime)
    deploys.register(app, runtime)
    approvals.register(app, runtime)
    return app


def routes(runtime: Runtime) -> list[Route]:
    bolt = build_bolt_app(runtime)

    async def events(request: Request) -> Response:
        if bolt is None:
            return JSONResponse(
                {"error": "Slack is not configured: set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN"},
                status_code=503,
            )
        body = await request.body()
        answer = await run_in_threadpool(bolt.dispatch, to_bolt_request(request, body))
        return to_starlette_response(answer)

    return [Route("/slack/events", events, methods=["POST"])]
