"""Consuming the alarm queue (SNS to SQS): the durable intake.

A message is deleted only after it is recorded, or when it is refused for good;
one the delete missed (logged with its id and counted, as is a failed poll) comes
again as a duplicate.
A poll's messages (up to 10) are checked one by one and recorded together, in
one transaction (`record_batch`, bot/alarms/intake.py).
By default every message must be an SNS envelope from an allowed topic whose
signature holds (the same verifier as POST /sns): the queue's access policy is
not the only thing between the world and a page. With raw message delivery
(`verifier=None`) there is no envelope to verify, and the queue policy is the
only trust boundary.

What happens to a message that is not recorded:
- forged or junk (not an envelope, no TopicArn, a signature that does not hold,
  a certificate URL off the pattern): logged and deleted; it would be refused
  the same way on every redelivery.
- genuine but refused by configuration (a correct signature, but from a topic
  not in OPSBOT_SNS_TOPIC_ARNS or with SignatureVersion 1 not allowed; or a bare
  CloudWatch alarm, which is what raw message delivery sends while
  OPSBOT_ALARM_QUEUE_RAW_DELIVERY is not set): logged at ERROR and left, so that
  it reaches the dead-letter queue and can be redriven once the configuration is
  fixed, instead of an alarm lost.
- not verifiable now (the certificate could not be fetched) or not recordable
  now (the database): left, and redelivered after the visibility timeout.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from typing import Any

from bot import json_depth
from bot.alarms.service import Inbound
from bot.observability.metrics import Metrics
from bot.sns.envelope import NOTIFICATION, Envelope, MalformedEnvelope, for_log, parse_envelope
from bot.sns.verify import (
    QUEUE,
    CertificateNotTopics,
    CertificateRefused,
    CertificateUnavailable,
    SignatureInvalid,
    SnsVerifier,
)

log = logging.getLogger(__name__)


class Verdict(enum.Enum):
    RECORDED = "recorded"
    REFUSED = "refused"  # deleted
    LEFT = "left"  # redelivered later, or dead-lettered
    FAILED = "failed"  # left, as a check that failed on it (a bug of ours) found nothing


def inbound_from_sqs(message: dict[str, Any]) -> Inbound:
    """A message under raw delivery: an SNS envelope if it looks like one, else the bare body."""
    body = str(message.get("Body", ""))
    try:
        data = json_depth.loads(body)  # too deep is a ValueError: taken as a raw message
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("Type") == NOTIFICATION and "Message" in data:
        topic_arn, subject = data.get("TopicArn"), data.get("Subject")
        return Inbound(
            message_id=str(data.get("MessageId") or message["MessageId"]),
            via="sqs",
            body=str(data["Message"]),
            topic_arn=str(topic_arn) if topic_arn is not None else None,
            subject=str(subject) if subject is not None else None,
        )
    # Raw message delivery: the SNS envelope (and its MessageId) is gone.
    return Inbound(message_id=f"sqs:{message['MessageId']}", via="sqs", body=body)


def looks_like_raw_alarm(message: dict[str, Any]) -> bool:
    """A body that is a bare CloudWatch alarm (no `Type`; `AlarmName` or `NewStateValue`):
    what SNS sends a queue subscribed with raw message delivery."""
    try:
        data = json_depth.loads(str(message.get("Body", "")))
    except (ValueError, RecursionError):
        return False
    return (
        isinstance(data, dict)
        and "Type" not in data
        and ("AlarmName" in data or "NewStateValue" in data)
    )


class AlarmQueueConsumer:
    def __init__(
        self,
        *,
        sqs: Any,
        queue_url: str,
        record: Callable[[Inbound], str],
        record_batch: Callable[[list[Inbound]], list[str | BaseException]] | None = None,
        allowed_topics: list[str],
        verifier: SnsVerifier | None,
        wait_s: int = 20,
        metrics: Metrics | None = None,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.record = record
        # A poll's messages in one transaction (bot/alarms/intake.py), when given.
        self.record_batch = record_batch
        self.allowed_topics = set(allowed_topics)
        self.verifier = verifier
        self.wait_s = wait_s
        self.metrics = metrics or Metrics()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="alarm-queue", daemon=True)
        self._thread.start()
        log.info("consuming alarms from %s", self.queue_url)

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("alarm queue poll failed; retrying in 5 s")
                self._stop.wait(5)

    def poll_once(self) -> int:
        """Receive one batch and deal with each message; return how many were deleted."""
        try:
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=self.wait_s,
            )
        except Exception:
            self.metrics.alarm_queue_errors.labels("receive").inc()
            raise
        messages = answer.get("Messages", [])
        checked = [self._check_alone(message) for message in messages]
        to_record = [c for c in checked if isinstance(c, Inbound)]
        if to_record and self.record_batch is not None:
            recorded = iter(self._record_all(to_record))
        else:
            recorded = iter([self._record(inbound) for inbound in to_record])
        done = []
        for message, check in zip(messages, checked, strict=True):
            verdict = next(recorded) if isinstance(check, Inbound) else check
            if verdict is Verdict.REFUSED:
                self.metrics.notifications.labels("sqs", "refused").inc()
            elif verdict is Verdict.LEFT and not isinstance(check, Inbound):
                # Genuine or not yet known: its certificate, topic or signature version
                # kept it from being recorded (a recording failure counts as `error`).
                self.metrics.notifications.labels("sqs", "left").inc()
            if verdict not in (Verdict.LEFT, Verdict.FAILED):
                done.append({"Id": message["MessageId"], "ReceiptHandle": message["ReceiptHandle"]})
        return self._delete(done) if done else 0

    def _delete(self, entries: list[dict[str, str]]) -> int:
        """Delete what was recorded or refused; return how many were. A message not deleted
        comes again (recorded already: a duplicate) and, failing every time, reaches the
        dead-letter queue and its alarm, for an alarm that was handled."""
        try:
            answer = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except Exception:
            self.metrics.alarm_queue_errors.labels("delete").inc(len(entries))
            log.warning(
                "alarm queue messages %s not deleted; they will be redelivered",
                ", ".join(for_log(entry["Id"]) for entry in entries),
                exc_info=True,
            )
            return 0
        failed = answer.get("Failed", [])
        for entry in failed:
            log.warning(
                "alarm queue message %s not deleted (%s: %s); it will be redelivered",
                for_log(entry.get("Id")),
                for_log(entry.get("Code")),
                for_log(entry.get("Message")),
            )
        if failed:
            self.metrics.alarm_queue_errors.labels("delete").inc(len(failed))
        return len(entries) - len(failed)

    def handle(self, message: dict[str, Any]) -> Verdict:
        """Record, refuse or leave one received message (the caller deletes unless left)."""
        check = self.check(message)
        return self._record(check) if isinstance(check, Inbound) else check

    def _check_alone(self, message: dict[str, Any]) -> Verdict | Inbound:
        """check(), a message it fails on left alone while the poll's others go on."""
        try:
            return self.check(message)
        except Exception:
            self.metrics.notifications.labels("sqs", "error").inc()
            log.exception(
                "alarm queue message %s could not be checked; left for redelivery",
                for_log(message.get("MessageId")),
            )
            return Verdict.FAILED

    def check(self, message: dict[str, Any]) -> Verdict | Inbound:
        """What to record of one received message, or why it is refused or left."""
        sqs_id = for_log(message.get("MessageId"))
        if self.verifier is None:
            inbound = inbound_from_sqs(message)
            if self.allowed_topics and inbound.topic_arn not in (self.allowed_topics | {None}):
                log.warning(
                    "alarm queue message %s refused and deleted: topic %s not allowed",
                    sqs_id,
                    for_log(inbound.topic_arn),
                )
                return Verdict.REFUSED
            return inbound

        try:
            envelope = parse_envelope(str(message.get("Body", "")).encode("utf-8"))
        except MalformedEnvelope as exc:
            if looks_like_raw_alarm(message):
                log.error(
                    "alarm queue message %s left for the dead-letter queue: a bare CloudWatch"
                    " alarm, not an SNS envelope; the subscription delivers raw messages: set"
                    " OPSBOT_ALARM_QUEUE_RAW_DELIVERY=true (or turn raw message delivery off)",
                    sqs_id,
                    extra={"sqs_message_id": message.get("MessageId")},
                )
                return Verdict.LEFT
            log.warning(
                "alarm queue message %s refused and deleted: not an SNS envelope (%s)",
                sqs_id,
                exc,
            )
            return Verdict.REFUSED
        ids = f"{sqs_id} (SNS {for_log(envelope.message_id)} from {for_log(envelope.topic_arn)})"
        if envelope.type != NOTIFICATION:
            log.warning(
                "alarm queue message %s refused and deleted: a %s, not a Notification",
                ids,
                for_log(envelope.type),
            )
            return Verdict.REFUSED
        if not envelope.topic_arn:
            log.warning("alarm queue message %s refused and deleted: no TopicArn", ids)
            return Verdict.REFUSED
        try:
            # The queue may hold a message for days (and redrive it later): its age
            # is no reason to refuse it, and a replay is a duplicate MessageId.
            self.verifier.verify(envelope, max_age=None, allow_signature_v1=True, lane=QUEUE)
        except (CertificateRefused, CertificateNotTopics) as exc:
            # Only the topic sends here: the message is genuine, its certificate out
            # of our reach (or not where SNS is known to sign). Left, it reaches the
            # dead-letter queue and its alarm.
            log.error("alarm queue message %s left for the dead-letter queue: %s", ids, exc)
            return Verdict.LEFT
        except SignatureInvalid as exc:
            log.warning("alarm queue message %s refused and deleted: %s", ids, exc)
            return Verdict.REFUSED
        except CertificateUnavailable as exc:
            log.warning("alarm queue message %s left for redelivery: %s", ids, exc)
            return Verdict.LEFT
        refusal = self._configuration_refuses(envelope)
        if refusal:
            log.error(
                "alarm queue message %s is genuine but refused, left for the dead-letter queue: %s",
                ids,
                refusal,
            )
            return Verdict.LEFT
        return Inbound(
            message_id=envelope.message_id,
            via="sqs",
            body=envelope.message,
            topic_arn=envelope.topic_arn,
            subject=envelope.subject,
        )

    def _configuration_refuses(self, envelope: Envelope) -> str | None:
        if envelope.topic_arn not in self.allowed_topics:
            return "its topic is not in OPSBOT_SNS_TOPIC_ARNS"
        if envelope.signature_version == "1" and not (
            self.verifier is not None and self.verifier.allow_signature_v1
        ):
            return "SignatureVersion 1 (set the topic's SignatureVersion to 2, or allow 1)"
        return None

    def _record_all(self, inbounds: list[Inbound]) -> list[Verdict]:
        assert self.record_batch is not None
        try:
            outcomes = self.record_batch(inbounds)
        except Exception:
            outcomes = [RuntimeError("the batch failed")] * len(inbounds)
            log.exception("could not record a batch of %d; redelivered later", len(inbounds))
        verdicts = []
        for inbound, outcome in zip(inbounds, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.error(
                    "could not record %s; it will be redelivered: %s",
                    for_log(inbound.message_id),
                    type(outcome).__name__,
                )
                verdicts.append(Verdict.LEFT)
            else:
                verdicts.append(Verdict.RECORDED)
        return verdicts

    def _record(self, inbound: Inbound) -> Verdict:
        try:
            self.record(inbound)
        except Exception:
            log.exception(
                "could not record %s; it will be redelivered", for_log(inbound.message_id)
            )
            return Verdict.LEFT
        return Verdict.RECORDED
