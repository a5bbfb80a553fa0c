"""POST /sns: Amazon SNS over HTTPS.

Order matters: parse the envelope (400 if it is not one), check the topic
(403), verify the signature (403), and only then confirm or record. Nothing is
written before the message is known to come from an allowed SNS topic.
"""

from __future__ import annotations

import functools
import logging

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.alarms.service import Inbound
from bot.runtime import Runtime
from bot.sns.confirm import confirm_subscription
from bot.sns.envelope import (
    MAX_BODY_BYTES,
    NOTIFICATION,
    SUBSCRIPTION_CONFIRMATION,
    Envelope,
    MalformedEnvelope,
    parse_envelope,
)
from bot.sns.fetch import FetchFailed
from bot.sns.verify import SignatureInvalid

log = logging.getLogger(__name__)


def _answer(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": status, "message": message}, status_code=status)


# How many notifications are verified and recorded at once; the rest wait their
# turn in the event loop, in the order they came. More at once only slows each
# one down (they share the interpreter and the database), and the first page of
# a storm waits for the first record. Storm benchmark (400 notifications, 32 in
# flight, 2 cores, median of 3 runs): first page after 0.074 s with 1 at once,
# 0.099 s with 2, intake about 60/s with either; before verification moved
# under the limit too, 4 at once and 40 (the threadpool's size) were slower.
AT_ONCE = 1


def routes(runtime: Runtime) -> list[Route]:
    allowed = set(runtime.settings.sns_topic_arns)
    limit: list[anyio.CapacityLimiter] = []  # made in the event loop, on first use

    def verify_and_record(envelope: Envelope) -> str:
        runtime.sns_verifier.verify(envelope)
        inbound = Inbound(
            message_id=envelope.message_id,
            via="https",
            body=envelope.message,
            topic_arn=envelope.topic_arn,
            subject=envelope.subject,
        )
        return runtime.intake.record(inbound)

    async def notification(envelope: Envelope) -> JSONResponse:
        if not limit:
            limit.append(anyio.CapacityLimiter(AT_ONCE))
        try:
            # One trip to a thread for both: a storm's notifications each hop once.
            outcome = await anyio.to_thread.run_sync(
                functools.partial(verify_and_record, envelope), limiter=limit[0]
            )
        except SignatureInvalid as exc:
            log.warning("SNS message %r refused: %r", envelope.message_id, str(exc))
            return _answer(403, "signature not valid")
        except Exception:
            log.exception("could not record SNS message %r", envelope.message_id)
            # 5xx makes SNS deliver it again; nothing was committed.
            return _answer(503, "could not record the message; retry")
        return _answer(200, outcome)

    async def receive(request: Request) -> JSONResponse:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return _answer(413, "body too large")
        try:
            envelope = parse_envelope(raw)
        except MalformedEnvelope as exc:
            return _answer(400, f"not an SNS message: {exc}")
        header = request.headers.get("x-amz-sns-message-type")
        if header is not None and header != envelope.type:
            return _answer(400, "x-amz-sns-message-type does not match the body's Type")
        if envelope.topic_arn not in allowed:
            log.warning("SNS message from a topic not allowed: %r", envelope.topic_arn)
            return _answer(403, "topic not allowed")
        if envelope.type == NOTIFICATION:
            return await notification(envelope)

        try:
            await run_in_threadpool(runtime.sns_verifier.verify, envelope)
        except SignatureInvalid as exc:
            log.warning("SNS message %r refused: %r", envelope.message_id, str(exc))
            return _answer(403, "signature not valid")
        if envelope.type != SUBSCRIPTION_CONFIRMATION:
            log.info("unsubscribed from %r", envelope.topic_arn)
            return _answer(200, "noted")
        try:
            await run_in_threadpool(
                confirm_subscription,
                envelope,
                url_pattern=runtime.sns_url_pattern,
                fetch=runtime.fetch,
            )
        except SignatureInvalid:
            return _answer(403, "SubscribeURL not allowed")
        except FetchFailed as exc:
            # 5xx: SNS will send the confirmation again.
            log.error("could not confirm subscription to %r: %r", envelope.topic_arn, str(exc))
            return _answer(502, "could not confirm the subscription")
        log.info("confirmed the subscription to %r", envelope.topic_arn)
        return _answer(200, "subscription confirmed")

    return [Route("/sns", receive, methods=["POST"])]
