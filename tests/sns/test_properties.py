"""Hostile input, generated: the SNS parser and verifier and the alarm parser never fail
in any other way than saying no, and /sns never answers 500 or stores anything."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.alarms.models import ReceivedMessage
from bot.alarms.parse import parse_alarm
from bot.clock import SystemClock
from bot.sns.envelope import MalformedEnvelope, parse_envelope
from bot.sns.verify import CertificateUnavailable, SignatureInvalid, SnsVerifier
from sandbox.alarms import alarm_message
from sandbox.sns import SnsSigner, body
from tests.conftest import TOPIC_ARN
from tests.support import LiveService

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)
ENVELOPE_KEYS = [
    "Type",
    "MessageId",
    "TopicArn",
    "Message",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
    "Subject",
    "Token",
    "SubscribeURL",
    "UnsubscribeURL",
]
envelopes = st.dictionaries(
    st.sampled_from(ENVELOPE_KEYS), st.text(max_size=40) | json_values, max_size=12
)


@given(st.binary(max_size=300))
def test_any_bytes_are_an_envelope_or_refused(raw: bytes) -> None:
    with contextlib.suppress(MalformedEnvelope):
        parse_envelope(raw)


@settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(fields=envelopes, version=st.sampled_from(["1", "2", "3", ""]))
def test_any_envelope_verifies_or_is_refused(
    sns_signer: SnsSigner, fields: dict[str, Any], version: str
) -> None:
    verifier = SnsVerifier(
        url_pattern=re.compile(sns_signer.url_pattern),
        fetch=lambda url: sns_signer.cert_pem,
        clock=SystemClock(),
        allow_signature_v1=True,
    )
    base = sns_signer.notification("m", topic_arn=TOPIC_ARN)
    try:
        envelope = parse_envelope(
            json.dumps({**base, **fields, "SignatureVersion": version}).encode()
        )
        verifier.verify(envelope)
    except (MalformedEnvelope, SignatureInvalid, CertificateUnavailable):
        return
    # Only the untouched signed fields can pass.
    for key in ("Message", "MessageId", "Timestamp", "TopicArn", "Type", "Signature"):
        assert (
            envelope.__dict__[
                {
                    "Message": "message",
                    "MessageId": "message_id",
                    "Timestamp": "timestamp",
                    "TopicArn": "topic_arn",
                    "Type": "type",
                    "Signature": "signature",
                }[key]
            ]
            == base[key]
        )


@given(json_values)
def test_alarm_parser_takes_any_json(value: Any) -> None:
    parse_alarm(json.dumps(value))


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "AlarmName",
                "NewStateValue",
                "OldStateValue",
                "StateChangeTime",
                "AlarmArn",
                "AWSAccountId",
                "Trigger",
                "AlarmRule",
                "TriggeringChildren",
                "Region",
            ]
        ),
        json_values,
    )
)
# Found by hypothesis: a composite alarm whose TriggeringChildren is not a list.
@example({"AlarmRule": "ALARM(a)", "TriggeringChildren": True})
def test_alarm_parser_takes_any_alarm_shaped_object(overrides: dict[str, Any]) -> None:
    message = {**json.loads(alarm_message(name="x", state="ALARM")), **overrides}
    parse_alarm(json.dumps(message))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=400) | envelopes.map(lambda d: json.dumps(d).encode()))
def test_sns_endpoint_never_fails_and_stores_nothing_for_garbage(
    service: LiveService, raw: bytes
) -> None:
    answer = service.post("/sns", content=raw)
    assert answer.status_code in (400, 403)
    with service.runtime.sessions() as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(ReceivedMessage)) == 0


def test_a_generated_body_can_still_be_good(service: LiveService, sns_signer: SnsSigner) -> None:
    """The property above would pass vacuously if the endpoint refused everything."""
    answer = service.post("/sns", content=body(sns_signer.notification("ok", topic_arn=TOPIC_ARN)))
    assert answer.status_code == 200
