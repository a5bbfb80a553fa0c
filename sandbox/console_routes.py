"""The sandbox's web console (`opsbot dev` only): a page, its assets, and a small JSON API.

Served by the same app as the bot, as the extra routes `opsbot dev` gives
create_app. The API refuses anything that could come
from another site: POSTs must be JSON (a cross-site form cannot send that
without a CORS preflight, which is never granted) and the Host must be the
sandbox's own (no DNS rebinding), since the console can act as anyone.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.runtime import Runtime
from sandbox import console_modals
from sandbox.console import ConsoleActions, ConsoleError
from sandbox.console_home import ConsoleHome, ConsoleHomeError

ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console_home.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "modals.js": "text/javascript; charset=utf-8",
    "modals.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def _asset(name: str) -> bytes:
    return resources.files("sandbox").joinpath("web", name).read_bytes()


def _host_allowed(request: Request, listen_host: str) -> bool:
    host = (request.headers.get("host") or "").lower()
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in LOOPBACK_HOSTS or name == listen_host.lower()


def _text(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise ConsoleError(f"{key}: a string is needed")
    return value


def routes(runtime: Runtime, actions: ConsoleActions) -> list[Route]:
    """The console's page and API over the sandbox's runtime (create_app's extra routes)."""
    listen_host = runtime.settings.host

    def guarded(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def guard(request: Request) -> Response:
            if not _host_allowed(request, listen_host):
                return JSONResponse({"error": "unknown Host"}, status_code=403)
            if request.method == "POST":
                content_type = request.headers.get("content-type", "")
                if not content_type.startswith("application/json"):
                    return JSONResponse({"error": "send JSON"}, status_code=415)
            answer = await handler(request)
            answer.headers.update(SECURITY_HEADERS)
            return answer

        return guard

    async def page(_request: Request) -> Response:
        return Response(_asset("index.html"), media_type="text/html; charset=utf-8")

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return Response(b"not found", status_code=404, media_type="text/plain")
        return Response(_asset(name), media_type=ASSETS[name])

    async def state(_request: Request) -> Response:
        shown = await run_in_threadpool(actions.state)
        return JSONResponse({**shown, "metrics_url": runtime.metrics_url})

    def api(do: Callable[[ConsoleActions, dict[str, Any]], dict[str, Any]]) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                body = json.loads(await request.body() or b"{}")
                if not isinstance(body, dict):
                    raise ConsoleError("send a JSON object")
                result = await run_in_threadpool(do, actions, body)
            except (ConsoleError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            return JSONResponse(result)

        return endpoint

    def command(console: ConsoleActions, body: dict[str, Any]) -> dict[str, Any]:
        return console.command(
            user_id=str(_text(body, "user")),
            channel=str(_text(body, "channel")),
            text=str(_text(body, "text")),
        )

    def click(console: ConsoleActions, body: dict[str, Any]) -> dict[str, Any]:
        return console.click(
            user_id=str(_text(body, "user")),
            channel=str(_text(body, "channel")),
            action_id=str(_text(body, "action_id")),
            value=_text(body, "value", required=False),
            block_id=_text(body, "block_id", required=False) or "b",
            message_ts=_text(body, "message_ts", required=False),
            ephemeral_id=_text(body, "ephemeral_id", required=False),
            selected_option=_text(body, "selected_option", required=False),
        )

    def alarm(console: ConsoleActions, body: dict[str, Any]) -> dict[str, Any]:
        count = body.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool):
            raise ConsoleError("count: a number is needed")
        return console.alarm(
            name=str(_text(body, "name")), state=str(_text(body, "state")), count=count
        )

    def pagerduty(console: ConsoleActions, body: dict[str, Any]) -> dict[str, Any]:
        return console.pagerduty(
            incident_id=str(_text(body, "incident_id")),
            status=str(_text(body, "status")),
            user_id=str(_text(body, "user")),
        )

    home = ConsoleHome(
        slack=actions.sandbox.slack,
        signing_secret=actions.sandbox.secrets.slack_signing_secret,
        service_url=actions.sandbox.service_url,
    )

    def home_api(do: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                body = json.loads(await request.body() or b"{}")
                if not isinstance(body, dict):
                    raise ConsoleError("send a JSON object")
                return JSONResponse(await run_in_threadpool(do, body))
            except (ConsoleError, ConsoleHomeError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)

        return endpoint

    def home_click(body: dict[str, Any]) -> dict[str, Any]:
        return home.click(
            str(_text(body, "user")),
            action_id=str(_text(body, "action_id")),
            value=_text(body, "value", required=False),
            block_id=_text(body, "block_id", required=False) or "b",
        )

    async def no_icon(_request: Request) -> Response:
        return Response(status_code=204)

    return [
        Route("/", guarded(page), methods=["GET"]),
        Route("/favicon.ico", no_icon, methods=["GET"]),
        Route("/console/{name}", guarded(asset), methods=["GET"]),
        Route("/console/api/state", guarded(state), methods=["GET"]),
        Route("/console/api/command", guarded(api(command)), methods=["POST"]),
        Route("/console/api/click", guarded(api(click)), methods=["POST"]),
        Route("/console/api/alarm", guarded(api(alarm)), methods=["POST"]),
        Route("/console/api/pagerduty", guarded(api(pagerduty)), methods=["POST"]),
        # App Home (sandbox/console_home.py, sandbox/web/console_home.js).
        Route(
            "/console/api/home/view",
            guarded(home_api(lambda body: home.view(str(_text(body, "user"))))),
            methods=["POST"],
        ),
        Route(
            "/console/api/home/open",
            guarded(home_api(lambda body: home.open(str(_text(body, "user"))))),
            methods=["POST"],
        ),
        Route("/console/api/home/click", guarded(home_api(home_click)), methods=["POST"]),
        *console_modals.routes(actions, guarded, api),
    ]
