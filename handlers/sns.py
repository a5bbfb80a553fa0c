"""POST /sns: Amazon SNS over HTTPS.

Order matters: check the topic SNS names in the `x-amz-sns-topic-arn` header
(403, before the body is read: SNS always sends it, and parsing a hostile body
is the dearest step before the signature), parse the envelope (400 if it is
not one, or if its Type or signed TopicArn is not what the headers say), check
what needs nothing fetched (SignatureVersion, certificate URL and the AWS
region it names, which must be the topic's, Timestamp: 403), get the
signing certificate, verify the signature (403), and only then confirm or
record. Nothing is written before the message is known to come from an allowed
SNS topic. A body larger than `PARSE_IN_THREAD_BYTES` is parsed in a thread:
the event loop gets its turns between such parses (a notification is a few
KiB, parsed here).

A certificate that must be fetched is waited for here, in the event loop: a
slow certificate host delays nobody but its own messages. A certificate that
cannot be had now (its host is slow or failing, or too many are being fetched)
gets a 503, which SNS retries.

Notifications that arrive together are verified side by side on the event
loop and recorded together: each verified one joins the intake's next batch
(bot/alarms/batch.py, one transaction for all), and is answered 200 only once
that batch is committed, 503 if it failed. A forged one never joins a batch:
its 403 costs the others nothing. A signature check (the canonical string, a
SHA digest, one RSA verification) is a fraction of a millisecond, less than
handing it to a thread and back: in a storm of 2,000 notifications the intake
took 570 to 640 a second with the checks in two threads, 950 with them here.
"""

from __future__ import annotations

import asyncio
import logging

import anyio
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.alarms.batch import IntakeStopping
from bot.alarms.service import Inbound
from bot.runtime import Runtime
from bot.sns.confirm import confirm_subscription
from bot.sns.envelope import (
    MAX_BODY_BYTES,
    NOTIFICATION,
    SUBSCRIPTION_CONFIRMATION,
    Envelope,
    MalformedEnvelope,
    for_log,
    parse_envelope,
)
from bot.sns.fetch import FetchFailed
from bot.sns.verify import CertificateUnavailable, SignatureInvalid, UrlNotAllowed

log = logging.getLogger(__name__)


def _answer(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": status, "message": message}, status_code=status)


# Answers that refuse a message (opsbot_alarm_notifications_total{outcome="refused"}).
REFUSED = frozenset({400, 403, 413})
# A CloudWatch alarm's notification is a few KiB; only a larger body leaves the event loop.
PARSE_IN_THREAD_BYTES = 64 * 1024
TOPIC_HEADER = "x-amz-sns-topic-arn"
MESSAGE_ID_HEADER = "x-amz-sns-message-id"
TYPE_HEADER = "x-amz-sns-message-type"


def routes(runtime: Runtime) -> list[Route]:
    allowed = set(runtime.settings.sns_topic_arns)
    verifier = runtime.sns_verifier

    async def signing_key(envelope: Envelope) -> rsa.RSAPublicKey:
        """The message's key, from the cache or fetched without holding a thread.

        Raises SignatureInvalid or CertificateUnavailable.
        """
        verifier.precheck(envelope)
        url = envelope.signing_cert_url
        key = verifier.cached_key(url)
        if key is not None:
            return key
        future = verifier.key_future(url)
        with anyio.move_on_after(verifier.wait_s):
            return await asyncio.wrap_future(future)
        raise CertificateUnavailable("signing certificate: still fetching")

    def refused(envelope: Envelope, exc: Exception) -> JSONResponse:
        log.warning(
            "SNS message %s from %s refused: %s",
            for_log(envelope.message_id),
            for_log(envelope.topic_arn),
            exc,
        )
        if isinstance(exc, UrlNotAllowed):
            return _answer(403, "signing certificate URL not allowed")
        return _answer(403, "signature not valid")

    def unavailable(envelope: Envelope, exc: Exception) -> JSONResponse:
        log.warning(
            "SNS message %s from %s not verified yet, SNS will retry: %s",
            for_log(envelope.message_id),
            for_log(envelope.topic_arn),
            exc,
        )
        return _answer(503, "signing certificate not available; retry")

    async def notification(envelope: Envelope) -> JSONResponse:
        try:
            key = await signing_key(envelope)
        except SignatureInvalid as exc:
            return refused(envelope, exc)
        except CertificateUnavailable as exc:
            # Genuine or not, it is not recorded until SNS delivers it again: `left`, as
            # the queue counts a message it leaves for the same reason.
            runtime.metrics.notifications.labels("https", "left").inc()
            return unavailable(envelope, exc)
        try:
            verifier.check_signature(envelope, key)
        except SignatureInvalid as exc:
            return refused(envelope, exc)
        inbound = Inbound(
            message_id=envelope.message_id,
            via="https",
            body=envelope.message,
            topic_arn=envelope.topic_arn,
            subject=envelope.subject,
        )
        try:
            # Resolved once the batch it joined is committed (or failed).
            outcome = await asyncio.wrap_future(runtime.intake.submit(inbound))
        except IntakeStopping:
            # Never taken, so the intake, which counts every notification it took, did not
            # count it: counted here, once.
            log.warning(
                "SNS message %s not recorded: the intake is stopping; SNS will retry",
                for_log(envelope.message_id),
                extra={"message_id": envelope.message_id, "via": "https"},
            )
            runtime.metrics.notifications.labels("https", "error").inc()
            return _answer(503, "could not record the message; retry")
        except Exception:
            # Taken, so counted where it failed: by the intake when its batch failed, in
            # opsbot_intake_writer_errors_total when the writer's turn did.
            log.exception("could not record SNS message %s", for_log(envelope.message_id))
            # 5xx makes SNS deliver it again; nothing of it was committed.
            return _answer(503, "could not record the message; retry")
        return _answer(200, outcome)

    async def receive(request: Request) -> JSONResponse:
        header_topic = request.headers.get(TOPIC_HEADER)
        header_id = request.headers.get(MESSAGE_ID_HEADER)
        if header_topic is None or header_topic not in allowed:
            log.warning(
                "POST /sns refused before reading the body: message %s, %s header %s"
                " is not an allowed topic",
                for_log(header_id),
                TOPIC_HEADER,
                for_log(header_topic),
                extra={"message_id": header_id, "topic_arn": header_topic},
            )
            return _answer(403, "topic not allowed")
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            log.info(
                "POST /sns refused: body of %d bytes, more than %d (message %s from %s)",
                len(raw),
                MAX_BODY_BYTES,
                for_log(header_id),
                for_log(header_topic),
                extra={"message_id": header_id, "topic_arn": header_topic},
            )
            return _answer(413, "body too large")
        try:
            if len(raw) > PARSE_IN_THREAD_BYTES:
                envelope = await run_in_threadpool(parse_envelope, raw)
            else:
                envelope = parse_envelope(raw)
        except MalformedEnvelope as exc:
            log.info(
                "POST /sns refused: not an SNS message (%s; message %s from %s)",
                exc,
                for_log(header_id),
                for_log(header_topic),
            )
            return _answer(400, f"not an SNS message: {exc}")
        header = request.headers.get(TYPE_HEADER)
        if header is not None and header != envelope.type:
            log.info(
                "POST /sns refused: SNS message %s from %s: header type %s, body Type %s",
                for_log(envelope.message_id),
                for_log(envelope.topic_arn),
                for_log(header),
                for_log(envelope.type),
                extra={"message_id": envelope.message_id, "topic_arn": envelope.topic_arn},
            )
            return _answer(400, "x-amz-sns-message-type does not match the body's Type")
        if header_topic != envelope.topic_arn:
            # SNS names the same topic in both. The header's is allowed, so the body's
            # TopicArn, the one the signature covers, is allowed once they agree.
            log.warning(
                "SNS message %s refused: %s header %s, body TopicArn %s",
                for_log(envelope.message_id),
                TOPIC_HEADER,
                for_log(header_topic),
                for_log(envelope.topic_arn),
                extra={"message_id": envelope.message_id, "topic_arn": envelope.topic_arn},
            )
            return _answer(400, "x-amz-sns-topic-arn does not match the body's TopicArn")
        if envelope.type == NOTIFICATION:
            return await notification(envelope)

        try:
            verifier.check_signature(envelope, await signing_key(envelope))
        except SignatureInvalid as exc:
            return refused(envelope, exc)
        except CertificateUnavailable as exc:
            return unavailable(envelope, exc)
        topic = for_log(envelope.topic_arn)
        if envelope.type != SUBSCRIPTION_CONFIRMATION:
            # Nobody at opsbot asked for it: whoever did, that topic's alarms stop here.
            runtime.metrics.sns_unsubscribed.inc()
            log.error(
                "unsubscribed from %s: its alarms no longer arrive over HTTPS (subscribe again)",
                topic,
                extra={"topic_arn": envelope.topic_arn, "message_id": envelope.message_id},
            )
            return _answer(200, "noted")
        try:
            await run_in_threadpool(
                confirm_subscription,
                envelope,
                url_pattern=runtime.sns_url_pattern,
                fetch=runtime.fetch,
            )
        except SignatureInvalid as exc:
            log.warning("subscription to %s not confirmed: %s", topic, exc)
            return _answer(403, "SubscribeURL not allowed")
        except FetchFailed as exc:
            # 5xx: SNS will send the confirmation again.
            log.error("could not confirm subscription to %s: %s", topic, exc)
            return _answer(502, "could not confirm the subscription")
        log.info("confirmed the subscription to %s", topic)
        return _answer(200, "subscription confirmed")

    async def counted(request: Request) -> JSONResponse:
        answer = await receive(request)
        if answer.status_code in REFUSED:
            runtime.metrics.notifications.labels("https", "refused").inc()
        return answer

    return [Route("/sns", counted, methods=["POST"])]
