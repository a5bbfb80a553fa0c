"""A notification answered 503 is counted in opsbot_alarm_notifications_total too."""

from __future__ import annotations

from collections.abc import Callable

from bot.config import Config
from bot.settings import Settings
from sandbox.sns import SnsSigner
from tests.conftest import TOPIC_ARN
from tests.sns.conftest import CertHost
from tests.sns.test_endpoint import ALARM, nothing_stored, post, trusting
from tests.support import LiveService, metric


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
