"""A notification answered 503 is counted in opsbot_alarm_notifications_total too."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import FrameType

import pytest

from bot.alarms.batch import GroupCommit
from bot.alarms.intake import AlarmIntake
from bot.config import Config
from bot.settings import Settings
from sandbox.sns import SnsSigner
from tests.conftest import TOPIC_ARN
from tests.sns.conftest import CertHost
from tests.sns.test_endpoint import ALARM, nothing_stored, post, trusting
from tests.support import LiveService, metric

POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def counts(service: LiveService) -> dict[str, float]:
    return {
        outcome: metric(service, "opsbot_alarm_notifications_total", via="https", outcome=outcome)
        for outcome in ("new", "duplicate", "refused", "error", "left")
    }


def test_a_notification_whose_certificate_cannot_be_had_now_is_counted_left(
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    cert_host: CertHost,
    make_service: Callable[..., LiveService],
) -> None:
    service = make_service(trusting(settings, cert_host.server.port), config)
    url = cert_host.url("/flaky/SimpleNotificationService-x.pem")
    for _ in range(2):
        envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN, cert_url=url)
        assert post(service, envelope).status_code == 503

    assert counts(service) == {"new": 0, "duplicate": 0, "refused": 0, "error": 0, "left": 2}
    assert nothing_stored(service)


def test_a_notification_the_stopping_intake_refuses_is_counted_an_error(
    service: LiveService, sns_signer: SnsSigner
) -> None:
    service.runtime.intake.stop()

    answer = post(service, sns_signer.notification(ALARM, topic_arn=TOPIC_ARN))

    assert answer.status_code == 503
    assert counts(service) == {"new": 0, "duplicate": 0, "refused": 0, "error": 1, "left": 0}
    assert nothing_stored(service)


class StopAfterSubmit:
    """Stops the intake on the handler's thread the moment `submit` hands back the future of
    `message_id`, before the handler looks at it: the writer records what was queued (and
    answers it) while the handler waits, as if the stop had come in between.

    A profile hook of the service's own thread: it runs the real code and changes none of it.
    """

    def __init__(self, service_thread: str, message_id: str) -> None:
        self.service_thread = service_thread
        self.message_id = message_id
        self.intake: AlarmIntake | None = None
        self.fired = False

    def __call__(self, frame: FrameType, event: str, arg: object) -> None:
        if not self.service_thread:
            return  # the service is starting: its thread is not known yet
        if threading.current_thread().name != self.service_thread:
            sys.setprofile(None)  # another thread: never watched
        elif event == "return" and frame.f_code is GroupCommit.submit.__code__:
            inbound = frame.f_locals.get("inbound")
            if self.intake is not None and getattr(inbound, "message_id", None) == self.message_id:
                sys.setprofile(None)
                self.intake.stop()
                self.fired = True


@POSTGRESQL
def test_a_notification_whose_batch_fails_as_the_intake_stops_is_counted_once(
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    make_service: Callable[..., LiveService],
) -> None:
    # PostgreSQL refuses a NUL in text: recording it fails, whoever signed it.
    envelope = sns_signer.notification("a notice with a \x00 in it", topic_arn=TOPIC_ARN)
    hook = StopAfterSubmit("", envelope["MessageId"])
    threading.setprofile(hook)
    try:
        service = make_service(settings, config)
    finally:
        threading.setprofile(None)
    hook.service_thread = service.thread.name
    hook.intake = service.runtime.intake

    answer = post(service, envelope)

    assert hook.fired
    assert answer.status_code == 503
    # The intake took it and counted its failure; nothing else counts it again.
    assert counts(service) == {"new": 0, "duplicate": 0, "refused": 0, "error": 1, "left": 0}
    assert nothing_stored(service)
