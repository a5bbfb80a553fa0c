"""SNS verification: versions, tampering, Timestamp, certificate URLs, and fetching certificates."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bot.clock import Clock, ManualClock, SystemClock
from bot.settings import DEFAULT_SNS_URL_PATTERN
from bot.sns.envelope import Envelope, MalformedEnvelope, parse_envelope
from bot.sns.fetch import FetchFailed, make_fetch
from bot.sns.verify import (
    FAILURE_TTL,
    FETCHES_AT_ONCE,
    QUEUE,
    TRANSIENT_FAILURE_TTL,
    CertificateUnavailable,
    SignatureInvalid,
    SignatureVersionNotAllowed,
    SnsVerifier,
    check_url,
    parse_timestamp,
)
from sandbox.sns import SnsSigner, body, sns_timestamp
from sandbox.tls import TestCA
from tests.sns.conftest import CertHost
from tests.support import wait_for

TOPIC = "arn:aws:sns:us-east-1:123456789012:alarms"
DEFAULT = re.compile(DEFAULT_SNS_URL_PATTERN)


def verifier_for(
    signer: SnsSigner,
    *,
    clock: Clock | None = None,
    allow_signature_v1: bool = False,
    fetch: Callable[[str], bytes] | None = None,
) -> SnsVerifier:
    return SnsVerifier(
        url_pattern=re.compile(signer.url_pattern),
        fetch=fetch or (lambda url: signer.cert_pem),
        clock=clock or SystemClock(),
        allow_signature_v1=allow_signature_v1,
    )


def test_signed_notification_verifies(sns_signer: SnsSigner) -> None:
    envelope = parse_envelope(
        body(sns_signer.notification("hello\nworld", topic_arn=TOPIC, subject="Hi"))
    )
    verifier_for(sns_signer).verify(envelope)


def test_signature_version_1_is_refused_unless_allowed(sns_signer: SnsSigner) -> None:
    envelope = parse_envelope(body(sns_signer.notification("x", topic_arn=TOPIC, version="1")))
    with pytest.raises(SignatureVersionNotAllowed, match="OPSBOT_SNS_ALLOW_SIGNATURE_V1"):
        verifier_for(sns_signer).verify(envelope)
    verifier_for(sns_signer, allow_signature_v1=True).verify(envelope)


def test_notification_without_subject_verifies(sns_signer: SnsSigner) -> None:
    verifier_for(sns_signer).verify(
        parse_envelope(body(sns_signer.notification("x", topic_arn=TOPIC)))
    )


def test_subscription_confirmation_verifies(sns_signer: SnsSigner) -> None:
    verifier_for(sns_signer).verify(
        parse_envelope(body(sns_signer.subscription_confirmation(topic_arn=TOPIC)))
    )


@pytest.mark.parametrize(
    "field, value",
    [
        ("Message", "tampered"),
        ("TopicArn", TOPIC + "x"),
        ("MessageId", "other"),
        ("Timestamp", "a minute earlier"),
        ("Subject", "changed"),
    ],
)
def test_any_signed_field_changed_fails(sns_signer: SnsSigner, field: str, value: str) -> None:
    envelope = sns_signer.notification("original", topic_arn=TOPIC, subject="Hi")
    if value == "a minute earlier":  # still within the hour: only the signature can refuse it
        value = sns_timestamp(parse_timestamp(envelope["Timestamp"]) - timedelta(minutes=1))
    envelope[field] = value
    with pytest.raises(SignatureInvalid, match="does not match"):
        verifier_for(sns_signer).verify(parse_envelope(body(envelope)))


def test_signature_version_is_part_of_the_check(sns_signer: SnsSigner) -> None:
    envelope = sns_signer.notification("x", topic_arn=TOPIC, version="1")
    envelope["SignatureVersion"] = "2"  # a SHA1 signature presented as SHA256
    with pytest.raises(SignatureInvalid, match="does not match"):
        verifier_for(sns_signer).verify(parse_envelope(body(envelope)))


@pytest.mark.parametrize(
    "offset",
    [timedelta(hours=-2), timedelta(minutes=-61), timedelta(minutes=61), timedelta(days=3)],
    ids=["2h-old", "61min-old", "61min-ahead", "3d-ahead"],
)
def test_a_timestamp_more_than_an_hour_from_now_is_refused(
    sns_signer: SnsSigner, offset: timedelta
) -> None:
    clock = ManualClock(datetime(2026, 12, 4, 1, 0, tzinfo=UTC))
    envelope = sns_signer.notification("x", topic_arn=TOPIC, timestamp=clock.now() + offset)
    with pytest.raises(SignatureInvalid, match="Timestamp"):
        verifier_for(sns_signer, clock=clock).verify(parse_envelope(body(envelope)))


@pytest.mark.parametrize("offset", [timedelta(minutes=-59), timedelta(minutes=59)])
def test_a_timestamp_within_the_hour_is_accepted(sns_signer: SnsSigner, offset: timedelta) -> None:
    clock = ManualClock(datetime(2026, 12, 4, 1, 0, tzinfo=UTC))
    envelope = sns_signer.notification("x", topic_arn=TOPIC, timestamp=clock.now() + offset)
    verifier_for(sns_signer, clock=clock).verify(parse_envelope(body(envelope)))


def test_without_a_maximum_age_only_the_future_is_bounded(sns_signer: SnsSigner) -> None:
    """The queue's check: an envelope may wait days in a queue, but never comes from the future."""
    clock = ManualClock(datetime(2026, 12, 4, 1, 0, tzinfo=UTC))
    verifier = verifier_for(sns_signer, clock=clock)
    old = sns_signer.notification("x", topic_arn=TOPIC, timestamp=clock.now() - timedelta(days=3))
    verifier.verify(parse_envelope(body(old)), max_age=None)
    ahead = sns_signer.notification(
        "x", topic_arn=TOPIC, timestamp=clock.now() + timedelta(hours=2)
    )
    with pytest.raises(SignatureInvalid, match="in the future"):
        verifier.verify(parse_envelope(body(ahead)), max_age=None)


@pytest.mark.parametrize(
    "timestamp", ["yesterday", "2026-12-04T01:00:00", "", "2026-12-04T01:00:00.000Z\nX"]
)
def test_a_timestamp_that_is_not_an_sns_time_is_refused(
    sns_signer: SnsSigner, timestamp: str
) -> None:
    envelope = sns_signer.sign(
        {**sns_signer.notification("x", topic_arn=TOPIC), "Timestamp": timestamp}
    )
    with pytest.raises(SignatureInvalid, match="Timestamp"):
        verifier_for(sns_signer).verify(parse_envelope(body(envelope)))


@pytest.mark.parametrize("version", ["3", "0", ""])
def test_unknown_signature_versions_are_refused(sns_signer: SnsSigner, version: str) -> None:
    envelope = sns_signer.notification("x", topic_arn=TOPIC)
    envelope["SignatureVersion"] = version
    with pytest.raises(SignatureInvalid, match="unsupported SignatureVersion"):
        verifier_for(sns_signer).verify(parse_envelope(body(envelope)))


def test_a_key_of_our_own_does_not_pass(sns_signer: SnsSigner, test_ca: object) -> None:
    from sandbox.tls import TestCA

    assert isinstance(test_ca, TestCA)
    forger = SnsSigner(tls=test_ca.server_context())  # a different key, same URL shape
    envelope = forger.sign({**sns_signer.notification("x", topic_arn=TOPIC), "Message": "forged"})
    with pytest.raises(SignatureInvalid):
        verifier_for(sns_signer).verify(parse_envelope(body(envelope)))


def test_garbage_signature_is_refused(sns_signer: SnsSigner) -> None:
    envelope = sns_signer.notification("x", topic_arn=TOPIC)
    envelope["Signature"] = "not base64 !!"
    with pytest.raises(SignatureInvalid, match="not base64"):
        verifier_for(sns_signer).verify(parse_envelope(body(envelope)))


def test_certificates_are_cached_by_url(sns_signer: SnsSigner) -> None:
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return sns_signer.cert_pem

    verifier = verifier_for(sns_signer, fetch=fetch)
    for n in range(3):
        verifier.verify(parse_envelope(body(sns_signer.notification(f"m{n}", topic_arn=TOPIC))))
    assert fetched == [sns_signer.cert_url]


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.eu-central-2.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-iso-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-isob-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
        "https://sns.ap-southeast-5.amazonaws.com/SimpleNotificationService-abc.pem",
    ],
)
def test_default_pattern_admits_sns_hosts(url: str) -> None:
    check_url(url, DEFAULT, pem=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",  # plain http
        "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-abc.pem",  # lookalike
        "https://sns.us-east-1.amazonaws.com@evil.example/x.pem",  # userinfo trick
        "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",  # host in the path
        "https://sns.us-east-1.amazonaws.com:8443/x.pem",  # other port
        "https://sns.us-east-1.amazonaws.com\\@evil.example/x.pem",  # backslash trick
        "https://sns.us-east-1.amazonaws.com/x.pem?redirect=https://evil.example/y.pem",  # not a .pem path
        "https://sns.us-east-1.amazonaws.com/x.txt",  # not a certificate
        "https://SNS.us-east-1.amazonaws.com/x.pem",  # upper case is not how SNS names itself
        "https://xsns.us-east-1.amazonaws.com/x.pem",
        "ftp://sns.us-east-1.amazonaws.com/x.pem",
        "",
        # Hosts under amazonaws.com that are not an SNS region's
        "https://sns.s3.amazonaws.com/x.pem",
        "https://sns.amazonaws.com/x.pem",
        "https://sns.evil.amazonaws.com/x.pem",
        "https://sns.us-east-1.s3.amazonaws.com/x.pem",
        "https://sns.evil.amazonaws.com.attacker.net/x.pem",
        "https://sns.us-east-1.amazonaws.com.attacker.net/x.pem",
        "https://sns.us-east-1.amazonaws.com.cn.attacker.net/x.pem",
        "https://sns.us-east-1.amazonaws.com./x.pem",
        "https://sns.us-east-1.amazonaws.com/x.pem\n",
        "https://sns.us-east-1.amazonaws.com/x .pem",
    ],
)
def test_default_pattern_refuses_everything_else(url: str) -> None:
    with pytest.raises(SignatureInvalid):
        check_url(url, DEFAULT, pem=True)


@pytest.mark.parametrize(
    "raw, why",
    [
        (b"not json", "body is not JSON"),
        (b"[]", "body is not a JSON object"),
        (json.dumps({"Type": "Notification"}).encode(), "missing field MessageId"),
        (json.dumps({"Type": "Other"}).encode(), "unknown Type"),
        (json.dumps({"Type": "Notification", "MessageId": 5}).encode(), "must be a string"),
    ],
)
def test_malformed_envelopes(raw: bytes, why: str) -> None:
    with pytest.raises(MalformedEnvelope, match=why):
        parse_envelope(raw)


def test_concurrent_first_messages_fetch_the_certificate_once(sns_signer: SnsSigner) -> None:
    import threading
    import time

    fetched: list[str] = []

    def slow_fetch(url: str) -> bytes:
        fetched.append(url)
        time.sleep(0.2)
        return sns_signer.cert_pem

    verifier = verifier_for(sns_signer, fetch=slow_fetch)
    envelopes = [
        parse_envelope(body(sns_signer.notification(f"m{n}", topic_arn=TOPIC))) for n in range(8)
    ]
    threads = [threading.Thread(target=verifier.verify, args=(e,)) for e in envelopes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fetched == [sns_signer.cert_url]


# -- fetching certificates --------------------------------------------------------------


def fetching_verifier(cert_host: CertHost, test_ca: TestCA, clock: Clock) -> SnsVerifier:
    """A verifier that trusts the attacker's host, so that its certificates are fetched."""
    return SnsVerifier(
        url_pattern=re.compile(rf"^https://{cert_host.pattern_part}/"),
        fetch=make_fetch(test_ca.client_context(), timeout_s=30),
        clock=clock,
    )


@pytest.mark.parametrize(
    "path, refusal, ttl",
    [
        ("/missing/SimpleNotificationService-x.pem", SignatureInvalid, FAILURE_TTL),
        ("/flaky/SimpleNotificationService-x.pem", CertificateUnavailable, TRANSIENT_FAILURE_TTL),
    ],
    ids=["404", "503"],
)
def test_a_failing_certificate_url_is_fetched_once_until_its_failure_expires(
    cert_host: CertHost,
    test_ca: TestCA,
    sns_signer: SnsSigner,
    path: str,
    refusal: type[Exception],
    ttl: timedelta,
) -> None:
    clock = ManualClock(datetime.now(UTC))
    verifier = fetching_verifier(cert_host, test_ca, clock)

    def attempt() -> None:
        envelope = sns_signer.notification(
            "x", topic_arn=TOPIC, cert_url=cert_host.url(path), timestamp=clock.now()
        )
        with pytest.raises(refusal, match="cannot fetch signing certificate"):
            verifier.verify(parse_envelope(body(envelope)))

    for _ in range(3):
        attempt()
    assert cert_host.requests[path] == 1
    clock.advance(seconds=ttl.total_seconds() - 1)
    attempt()
    assert cert_host.requests[path] == 1
    clock.advance(seconds=2)
    attempt()
    assert cert_host.requests[path] == 2


def test_a_fetch_that_fails_on_our_side_is_tried_again_soon_not_refused(
    sns_signer: SnsSigner,
) -> None:
    # No thread to be had (what a fetch's own thread start raises) says nothing of the
    # certificate: refusing it would answer SNS's genuine messages 403 for 5 minutes.
    clock = ManualClock(datetime.now(UTC))
    fetched = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        if len(fetched) == 1:
            raise RuntimeError("can't start new thread")
        return sns_signer.cert_pem

    verifier = verifier_for(sns_signer, clock=clock, fetch=fetch)

    def notification() -> Envelope:
        envelope = sns_signer.notification("x", topic_arn=TOPIC, timestamp=clock.now())
        return parse_envelope(body(envelope))

    with pytest.raises(CertificateUnavailable, match="RuntimeError"):
        verifier.verify(notification())
    assert len(fetched) == 1
    clock.advance(seconds=TRANSIENT_FAILURE_TTL.total_seconds() + 1)
    verifier.verify(notification())
    assert len(fetched) == 2


def test_no_thread_for_the_get_is_a_failure_that_may_pass(
    cert_host: CertHost, test_ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if thread.name == "bounded-fetch":
            raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(FetchFailed) as failure:
        make_fetch(test_ca.client_context(), timeout_s=30)(cert_host.url("/cert/x.pem"))
    assert failure.value.transient
    assert sum(cert_host.requests.values()) == 0


def test_at_most_a_few_certificates_are_fetched_at_once_and_a_known_one_never_waits(
    cert_host: CertHost, test_ca: TestCA, sns_signer: SnsSigner
) -> None:
    cert_host.cert_pem = sns_signer.cert_pem
    verifier = fetching_verifier(cert_host, test_ca, SystemClock())
    known = sns_signer.notification("known", topic_arn=TOPIC, cert_url=cert_host.url("/cert/a.pem"))
    verifier.verify(parse_envelope(body(known)))

    held = [verifier.key_future(cert_host.url(f"/held/{n}.pem")) for n in range(FETCHES_AT_ONCE)]
    wait_for(lambda: cert_host.holding == FETCHES_AT_ONCE)
    with pytest.raises(CertificateUnavailable, match="being fetched"):
        verifier.key_future(cert_host.url("/held/one-too-many.pem"))
    # A message for a certificate already on its way waits for that fetch, not a new one.
    assert verifier.key_future(cert_host.url("/held/0.pem")) is held[0]
    # A message whose certificate is known is verified while all the fetches hang.
    again = sns_signer.notification("again", topic_arn=TOPIC, cert_url=cert_host.url("/cert/a.pem"))
    verifier.verify(parse_envelope(body(again)))
    assert cert_host.answered_held == 0
    assert not any(future.done() for future in held)

    cert_host.release()
    for future in held:
        with pytest.raises(SignatureInvalid, match="404"):
            future.result(timeout=30)
    assert sum(cert_host.requests.values()) == FETCHES_AT_ONCE + 1
    # The slots are free again.
    with pytest.raises(SignatureInvalid, match="404"):
        verifier.key_future(cert_host.url("/held/one-too-many.pem")).result(timeout=30)


def test_a_flood_of_forged_urls_on_the_public_endpoint_leaves_the_queue_its_own_fetches(
    cert_host: CertHost, test_ca: TestCA, sns_signer: SnsSigner
) -> None:
    cert_host.cert_pem = sns_signer.cert_pem
    verifier = fetching_verifier(cert_host, test_ca, SystemClock())
    # Forged notifications on /sns, each naming a certificate URL of its own, hold
    # every public slot (their fetches hang here; against AWS each would fail).
    held = [verifier.key_future(cert_host.url(f"/held/{n}.pem")) for n in range(FETCHES_AT_ONCE)]
    wait_for(lambda: cert_host.holding == FETCHES_AT_ONCE)
    genuine = sns_signer.notification(
        "genuine", topic_arn=TOPIC, cert_url=cert_host.url("/cert/b.pem")
    )
    with pytest.raises(CertificateUnavailable, match="being fetched already"):
        verifier.verify(parse_envelope(body(genuine)))
    # The alarm queue's copy of the same message fetches in a slot of its own.
    verifier.verify(parse_envelope(body(genuine)), lane=QUEUE)
    assert cert_host.requests["/cert/b.pem"] == 1
    cert_host.release()
    for future in held:
        with pytest.raises(SignatureInvalid, match="404"):
            future.result(timeout=30)


@pytest.mark.parametrize(
    "path, transient",
    [("/missing/x.pem", False), ("/flaky/x.pem", True), ("/big/x.pem", False)],
    ids=["404", "503", "too-large"],
)
def test_a_failed_fetch_says_whether_trying_again_may_help(
    cert_host: CertHost, test_ca: TestCA, path: str, transient: bool
) -> None:
    with pytest.raises(FetchFailed) as failure:
        make_fetch(test_ca.client_context(), timeout_s=30)(cert_host.url(path))
    assert failure.value.transient is transient


def test_a_certificate_host_that_does_not_answer_is_given_up_on(
    cert_host: CertHost, test_ca: TestCA
) -> None:
    with pytest.raises(FetchFailed) as failure:
        make_fetch(test_ca.client_context(), timeout_s=0.5)(cert_host.url("/held/x.pem"))
    assert failure.value.transient
    assert cert_host.answered_held == 0


def test_a_waiter_that_gives_up_does_not_cancel_the_fetch_for_others(
    cert_host: CertHost, test_ca: TestCA
) -> None:
    verifier = fetching_verifier(cert_host, test_ca, SystemClock())
    future = verifier.key_future(cert_host.url("/held/x.pem"))
    assert not future.cancel()  # what asyncio does to it when a waiting request times out
    cert_host.release()
    assert isinstance(future.exception(timeout=30), SignatureInvalid)


def test_a_preloaded_certificate_verifies_without_a_fetch(sns_signer: SnsSigner) -> None:
    def fetch(url: str) -> bytes:
        raise AssertionError(f"fetched {url}")

    verifier = verifier_for(sns_signer, fetch=fetch)
    assert verifier.preload(sns_signer.cert_url, sns_signer.cert_pem)
    verifier.verify(parse_envelope(body(sns_signer.notification("hi", topic_arn=TOPIC))))


@pytest.mark.parametrize(
    ("url", "pem"),
    [
        ("{cert_url}", b"not a certificate"),
        ("https://sns.example.org/SimpleNotificationService-x.pem", None),  # off the pattern
    ],
)
def test_preload_refuses_what_it_could_not_fetch(
    sns_signer: SnsSigner, url: str, pem: bytes | None
) -> None:
    verifier = verifier_for(sns_signer)
    url = url.format(cert_url=sns_signer.cert_url)
    assert not verifier.preload(url, pem or sns_signer.cert_pem)
    assert verifier.cached_key(url) is None
