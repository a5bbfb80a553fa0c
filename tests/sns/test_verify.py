"""SNS signature verification: versions 1 and 2, tampering, and certificate URL checks."""

from __future__ import annotations

import json
import re

import pytest

from bot.sandbox.sns import SnsSigner, body
from bot.settings import DEFAULT_SNS_URL_PATTERN
from bot.sns.envelope import MalformedEnvelope, parse_envelope
from bot.sns.verify import SignatureInvalid, SnsVerifier, check_url

TOPIC = "arn:aws:sns:us-east-1:123456789012:alarms"
DEFAULT = re.compile(DEFAULT_SNS_URL_PATTERN)


def verifier_for(signer: SnsSigner) -> SnsVerifier:
    return SnsVerifier(
        url_pattern=re.compile(signer.url_pattern), fetch=lambda url: signer.cert_pem
    )


@pytest.mark.parametrize("version", ["1", "2"])
def test_signed_notification_verifies(sns_signer: SnsSigner, version: str) -> None:
    envelope = parse_envelope(
        body(
            sns_signer.notification("hello\nworld", topic_arn=TOPIC, subject="Hi", version=version)
        )
    )
    verifier_for(sns_signer).verify(envelope)


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
        ("Timestamp", "2020-01-01T00:00:00.000Z"),
        ("Subject", "changed"),
    ],
)
def test_any_signed_field_changed_fails(sns_signer: SnsSigner, field: str, value: str) -> None:
    envelope = sns_signer.notification("original", topic_arn=TOPIC, subject="Hi")
    envelope[field] = value
    with pytest.raises(SignatureInvalid, match="does not match"):
        verifier_for(sns_signer).verify(parse_envelope(body(envelope)))


def test_signature_version_is_part_of_the_check(sns_signer: SnsSigner) -> None:
    envelope = sns_signer.notification("x", topic_arn=TOPIC, version="1")
    envelope["SignatureVersion"] = "2"  # a SHA1 signature presented as SHA256
    with pytest.raises(SignatureInvalid):
        verifier_for(sns_signer).verify(parse_envelope(body(envelope)))


@pytest.mark.parametrize("version", ["3", "0", ""])
def test_unknown_signature_versions_are_refused(sns_signer: SnsSigner, version: str) -> None:
    envelope = sns_signer.notification("x", topic_arn=TOPIC)
    envelope["SignatureVersion"] = version
    with pytest.raises(SignatureInvalid, match="unsupported SignatureVersion"):
        verifier_for(sns_signer).verify(parse_envelope(body(envelope)))


def test_a_key_of_our_own_does_not_pass(sns_signer: SnsSigner, test_ca: object) -> None:
    from bot.sandbox.tls import TestCA

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

    verifier = SnsVerifier(url_pattern=re.compile(sns_signer.url_pattern), fetch=fetch)
    for n in range(3):
        verifier.verify(parse_envelope(body(sns_signer.notification(f"m{n}", topic_arn=TOPIC))))
    assert fetched == [sns_signer.cert_url]


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
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

    verifier = SnsVerifier(url_pattern=re.compile(sns_signer.url_pattern), fetch=slow_fetch)
    envelopes = [
        parse_envelope(body(sns_signer.notification(f"m{n}", topic_arn=TOPIC))) for n in range(8)
    ]
    threads = [threading.Thread(target=verifier.verify, args=(e,)) for e in envelopes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fetched == [sns_signer.cert_url]
