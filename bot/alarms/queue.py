"""Consuming the alarm queue (SNS to SQS): the durable intake.

A message is deleted only after it is recorded; if recording fails it becomes
visible again after the queue's visibility timeout. The queue's access policy
is the trust boundary, so envelopes are not signature-checked here, and raw
message delivery is accepted.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from bot.alarms.service import Inbound

log = logging.getLogger(__name__)


def inbound_from_sqs(message: dict[str, Any]) -> Inbound:
    body = str(message.get("Body", ""))
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("Type") == "Notification" and "Message" in data:
        return Inbound(
            message_id=str(data.get("MessageId") or message["MessageId"]),
            via="sqs",
            body=str(data["Message"]),
            topic_arn=data.get("TopicArn"),
            subject=data.get("Subject"),
        )
    # Raw message delivery: the SNS envelope (and its MessageId) is gone.
    return Inbound(message_id=f"sqs:{message['MessageId']}", via="sqs", body=body)


class AlarmQueueConsumer:
    def __init__(
        self,
        *,
        sqs: Any,
        queue_url: str,
        record: Callable[[Inbound], str],
        allowed_topics: list[str],
        wait_s: int = 20,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.record = record
        self.allowed_topics = set(allowed_topics)
        self.wait_s = wait_s
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
        """Receive one batch, record it, delete what was recorded; return how many."""
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self.wait_s,
        )
        done = []
        for message in answer.get("Messages", []):
            inbound = inbound_from_sqs(message)
            if self.allowed_topics and inbound.topic_arn not in (self.allowed_topics | {None}):
                log.warning("dropping message from topic %r: not allowed", inbound.topic_arn)
            else:
                try:
                    self.record(inbound)
                except Exception:
                    log.exception("could not record %r; it will be redelivered", inbound.message_id)
                    continue
            done.append({"Id": message["MessageId"], "ReceiptHandle": message["ReceiptHandle"]})
        if done:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=done)
        return len(done)
