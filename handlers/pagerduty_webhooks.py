"""POST /pagerduty/webhooks: PagerDuty webhooks v3.

Order matters: the signature over the raw body is checked against every
configured secret first (401, nothing written), then the event is parsed
(400, logged by its X-Webhook-Id and counted as `malformed`: signed, it is no
forgery), recorded and applied. A replay of a delivery (X-Webhook-Id) or of an
event (its id) is answered 200 and changes nothing. An event that could not be
recorded and applied (the database, or a clash that is not a replay) is answered
503, so that PagerDuty delivers it again.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot import json_depth
from bot.incidents.pagerduty_sync import DUPLICATE, CannotTellYet, ignored
from bot.pagerduty.webhooks import (
    MAX_BODY_BYTES,
    MalformedWebhook,
    WebhookEvent,
    parse_event,
    signature_valid,
)
from bot.runtime import Runtime

log = logging.getLogger(__name__)


def _answer(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": status, "message": message}, status_code=status)


def _ids(event: WebhookEvent, webhook_id: str | None, incident: int | None) -> dict[str, Any]:
    """What a failure's log line names, to tell which incidents Slack shows stale."""
    return {
        "pagerduty_event": event.id,
        "pagerduty_incident": event.incident.id if event.incident is not None else None,
        "incident": incident,
        "webhook_id": webhook_id,
    }


def routes(runtime: Runtime) -> list[Route]:
    secrets = [s.get_secret_value() for s in runtime.settings.pagerduty_webhook_secrets]

    counted = runtime.metrics.pagerduty_webhooks

    def refused(status: int, message: str) -> JSONResponse:
        counted.labels("refused").inc()
        return _answer(status, message)

    async def receive(request: Request) -> JSONResponse:
        raw = await request.body()
        webhook_id = request.headers.get("x-webhook-id") or None
        # Unsigned until checked: quoted and cut, to match PagerDuty's delivery log by.
        claimed = None if webhook_id is None else webhook_id[:100]
        if len(raw) > MAX_BODY_BYTES:
            log.warning(
                "PagerDuty webhook refused (X-Webhook-Id %r): body of %d bytes, over %d",
                claimed,
                len(raw),
                MAX_BODY_BYTES,
                extra={"webhook_id": claimed},
            )
            return refused(413, "body too large")
        if not signature_valid(raw, request.headers.get("x-pagerduty-signature"), secrets):
            log.warning(
                "PagerDuty webhook refused (X-Webhook-Id %r): bad or missing signature",
                claimed,
                extra={"webhook_id": claimed},
            )
            return refused(401, "signature not valid")
        try:
            json_depth.check_depth(raw)
            event = parse_event(raw)
        except (json_depth.JsonTooDeep, MalformedWebhook) as exc:
            # Signed, so PagerDuty's (or a secret holder's): counted apart from forgeries,
            # and logged by its delivery id for PagerDuty's delivery log. Never the body.
            log.warning(
                "PagerDuty webhook refused (X-Webhook-Id %s): signed but not a v3 event: %s",
                webhook_id,
                exc,
                extra={"webhook_id": webhook_id},
            )
            counted.labels("malformed").inc()
            return _answer(400, f"not a PagerDuty v3 event: {exc}")
        try:
            outcome = await run_in_threadpool(
                runtime.webhook_sync.receive, event, webhook_id=webhook_id
            )
        except CannotTellYet as exc:  # PagerDuty's REST API is down: it comes again
            ids = _ids(event, webhook_id, exc.incident_id)
            log.warning(
                "PagerDuty event %r (X-Webhook-Id %r) about PagerDuty incident %r, incident "
                "%s, not applied for now: %s",
                event.id,
                webhook_id,
                ids["pagerduty_incident"],
                exc.incident_id,
                exc,
                extra=ids,
            )
            counted.labels("error").inc()
            return _answer(503, "cannot place the event yet; retry")
        except Exception:
            ours = await run_in_threadpool(runtime.webhook_sync.known_incident, event)
            ids = _ids(event, webhook_id, ours)
            log.exception(
                "could not apply PagerDuty event %r (X-Webhook-Id %r) about PagerDuty "
                "incident %r, incident %s",
                event.id,
                webhook_id,
                ids["pagerduty_incident"],
                ours,
                extra=ids,
            )
            counted.labels("error").inc()
            return _answer(503, "could not record the event; retry")  # PagerDuty retries 5xx
        if outcome == DUPLICATE:
            counted.labels("duplicate").inc()
        elif ignored(outcome):
            counted.labels("ignored").inc()
        else:
            counted.labels("applied").inc()
        return _answer(200, outcome)

    return [Route("/pagerduty/webhooks", receive, methods=["POST"])]
