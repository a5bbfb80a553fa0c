"""Liveness and readiness for the load balancer and ECS."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.db.migrate import schema_problem
from bot.runtime import Runtime

log = logging.getLogger(__name__)


def routes(runtime: Runtime, slack_socket: Callable[[], bool] | None = None) -> list[Route]:
    """`slack_socket`: in Socket Mode, whether the websocket to Slack is open (else not ready)."""

    migrated = False  # found current once: later probes only ask the database to answer

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    def database_ready() -> str | None:
        nonlocal migrated
        try:
            with runtime.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            if not migrated:
                problem = schema_problem(runtime.engine)
                if problem is not None:
                    return problem
                migrated = True
        except Exception as exc:
            log.warning("readiness: database unavailable: %s", type(exc).__name__)
            return f"database unavailable ({type(exc).__name__})"
        return None

    async def readyz(_request: Request) -> JSONResponse:
        problem = await run_in_threadpool(database_ready)
        if problem is not None:
            return JSONResponse({"status": "unavailable", "database": problem}, status_code=503)
        if slack_socket is not None and not slack_socket():
            # Slack can reach no instance that has no socket: another instance should take it.
            return JSONResponse(
                {"status": "unavailable", "database": "ok", "slack_socket": "disconnected"},
                status_code=503,
            )
        answer = {"status": "ready", "database": "ok"}
        if slack_socket is not None:
            answer["slack_socket"] = "connected"
        return JSONResponse(answer)

    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
