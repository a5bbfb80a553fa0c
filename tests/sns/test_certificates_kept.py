"""A restarted instance verifies with the signing certificates it kept, and fetches the rest."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bot.clock import SystemClock
from bot.config import Config
from bot.db.engine import make_sessionmaker
from bot.settings import Settings
from bot.sns import service as kept
from bot.sns.jobs import KEPT_FOR, CertificateKeeper
from bot.sns.models import SnsCertificate
from sandbox.alarms import alarm_message
from sandbox.sns import SnsSigner, body
from tests.conftest import TOPIC_ARN
from tests.support import LiveService, wait_for

HEADERS = {"x-amz-sns-message-type": "Notification", "content-type": "text/plain; charset=UTF-8"}


def alarm(service: LiveService, signer: SnsSigner, name: str) -> int:
    envelope = signer.notification(alarm_message(name=name, state="ALARM"), topic_arn=TOPIC_ARN)
    return service.post("/sns", content=body(envelope), headers=HEADERS).status_code


def kept_urls(service: LiveService) -> list[str]:
    with service.runtime.sessions() as db:
        return list(db.scalars(sa.select(SnsCertificate.url)))


def test_a_restart_verifies_with_the_certificate_it_kept(
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    make_service: Callable[..., LiveService],
) -> None:
    first = make_service(settings, config)
    fetches = sns_signer.cert_fetches
    assert alarm(first, sns_signer, "prod-api-5xx") == 200
    assert sns_signer.cert_fetches == fetches + 1
    wait_for(lambda: kept_urls(first) == [sns_signer.cert_url], timeout_s=30)
    first.stop()

    second = make_service(settings, config)
    assert alarm(second, sns_signer, "prod-db-cpu") == 200
    assert sns_signer.cert_fetches == fetches + 1  # verified with the certificate kept


def test_a_certificate_kept_too_long_ago_is_fetched_again(
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    make_service: Callable[..., LiveService],
) -> None:
    first = make_service(settings, config)
    with first.runtime.sessions() as db:
        old = first.runtime.clock.now() - KEPT_FOR - timedelta(minutes=1)
        kept.keep(db, url=sns_signer.cert_url, pem=sns_signer.cert_pem, now=old, most=32)
        db.commit()
    first.stop()

    second = make_service(settings, config)
    fetches = sns_signer.cert_fetches
    assert alarm(second, sns_signer, "prod-api-5xx") == 200
    assert sns_signer.cert_fetches == fetches + 1


def test_a_bad_kept_certificate_is_not_used_and_changes_nothing(
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    make_service: Callable[..., LiveService],
    caplog: pytest.LogCaptureFixture,
) -> None:
    off_pattern = "https://sns.example.org/SimpleNotificationService-x.pem"
    first = make_service(settings, config)
    with first.runtime.sessions() as db:
        now = first.runtime.clock.now()
        kept.keep(db, url=sns_signer.cert_url, pem=b"not a certificate", now=now, most=32)
        kept.keep(db, url=off_pattern, pem=sns_signer.cert_pem, now=now, most=32)
        db.commit()
    first.stop()

    with caplog.at_level(logging.WARNING, logger="bot.sns.jobs"):
        second = make_service(settings, config)
    assert sum("not used" in r.getMessage() for r in caplog.records) == 2
    assert second.runtime.sns_verifier.cached_key(off_pattern) is None
    fetches = sns_signer.cert_fetches
    assert alarm(second, sns_signer, "prod-api-5xx") == 200  # the certificate is fetched
    assert sns_signer.cert_fetches == fetches + 1


def test_only_the_certificates_fetched_last_are_kept(
    settings: Settings, config: Config, make_service: Callable[..., LiveService]
) -> None:
    service = make_service(settings, config)
    start = service.runtime.clock.now()
    with service.runtime.sessions() as db:
        for n in range(5):
            url = f"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-{n}.pem"
            kept.keep(db, url=url, pem=b"pem", now=start + timedelta(seconds=n), most=3)
        db.commit()
        assert sorted(kept_urls(service)) == [
            f"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-{n}.pem"
            for n in (2, 3, 4)
        ]


def test_a_certificate_is_kept_after_its_fetch_and_not_once_the_keeper_stopped(
    engine: sa.Engine, sns_signer: SnsSigner
) -> None:
    sessions = make_sessionmaker(engine)

    def urls() -> list[str]:
        with sessions() as db:
            return list(db.scalars(sa.select(SnsCertificate.url)))

    stopped = CertificateKeeper(sessions=sessions, clock=SystemClock(), keep_after_s=0.1)
    stopped.fetched("https://sns.us-east-1.amazonaws.com/a.pem", sns_signer.cert_pem)
    stopped.stop()
    running = CertificateKeeper(sessions=sessions, clock=SystemClock(), keep_after_s=0.1)
    running.fetched("https://sns.us-east-1.amazonaws.com/b.pem", sns_signer.cert_pem)
    wait_for(lambda: urls() == ["https://sns.us-east-1.amazonaws.com/b.pem"])
    time.sleep(0.3)  # three times the delay: a write not cancelled would have landed
    assert urls() == ["https://sns.us-east-1.amazonaws.com/b.pem"]


def waiting_on_a_lock(engine: sa.Engine) -> int:
    # Its own transaction each time: pg_stat_activity is a snapshot within one.
    with engine.connect() as connection:
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database() AND query LIKE 'INSERT INTO sns_certificates%'"
        )
        return int(connection.scalar(sa.text(query)) or 0)


def test_two_instances_keeping_one_certificate_at_once_keep_it_once(
    engine: sa.Engine, sns_signer: SnsSigner, caplog: pytest.LogCaptureFixture
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite lets one writer at a time in: there is no race to lose")
    sessions = make_sessionmaker(engine)
    url = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem"
    keeper = CertificateKeeper(sessions=sessions, clock=SystemClock(), keep_after_s=0.0)
    with sessions() as other, caplog.at_level(logging.INFO, logger="bot.sns.jobs"):
        kept.keep(other, url=url, pem=sns_signer.cert_pem, now=SystemClock().now(), most=32)
        keeper.fetched(url, sns_signer.cert_pem)  # its INSERT waits for this transaction
        wait_for(lambda: waiting_on_a_lock(engine))
        other.commit()
        wait_for(lambda: any("kept by another" in r.getMessage() for r in caplog.records))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    with sessions() as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(SnsCertificate)) == 1
