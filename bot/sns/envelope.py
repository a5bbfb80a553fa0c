"""The SNS HTTP envelope, parsed once at the edge into a typed object."""

from __future__ import annotations

from dataclasses import dataclass

from bot import json_depth

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"
TYPES = (NOTIFICATION, SUBSCRIPTION_CONFIRMATION, UNSUBSCRIBE_CONFIRMATION)

MAX_BODY_BYTES = 512 * 1024  # SNS messages are at most 256 KiB; the envelope adds little


def for_log(value: object, *, limit: int = 120) -> str:
    """A value from outside, fit for a log line: quoted, control characters escaped, cut short.

    repr() escapes newlines, carriage returns and every other non-printable
    character, so a field can never end a log line and forge the next one.
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        return repr(text[:limit]) + f"...({len(text)} chars)"
    return repr(text)


class MalformedEnvelope(ValueError):
    """The body is not an SNS envelope; the message says what is missing."""


@dataclass(frozen=True)
class Envelope:
    type: str
    message_id: str
    topic_arn: str
    message: str
    timestamp: str
    signature_version: str
    signature: str
    signing_cert_url: str
    subject: str | None = None
    token: str | None = None
    subscribe_url: str | None = None
    unsubscribe_url: str | None = None

    def string_to_sign(self) -> bytes:
        """The canonical `name\\nvalue\\n` string SNS signs, in its documented order."""
        if self.type == NOTIFICATION:
            pairs = [("Message", self.message), ("MessageId", self.message_id)]
            if self.subject is not None:
                pairs.append(("Subject", self.subject))
            pairs += [("Timestamp", self.timestamp), ("TopicArn", self.topic_arn)]
        else:
            pairs = [
                ("Message", self.message),
                ("MessageId", self.message_id),
                ("SubscribeURL", self.subscribe_url or ""),
                ("Timestamp", self.timestamp),
                ("Token", self.token or ""),
                ("TopicArn", self.topic_arn),
            ]
        pairs.append(("Type", self.type))
        return "".join(f"{name}\n{value}\n" for name, value in pairs).encode("utf-8")


def _field(data: dict[str, object], name: str, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise MalformedEnvelope(f"missing field {name}")
        return None
    if not isinstance(value, str):
        raise MalformedEnvelope(f"field {name} must be a string")
    try:
        value.encode("utf-8")  # JSON's \ud800 escape decodes to a lone surrogate
    except UnicodeEncodeError:
        raise MalformedEnvelope(f"field {name} holds a lone surrogate, not text") from None
    return value


def parse_envelope(raw: bytes) -> Envelope:
    if len(raw) > MAX_BODY_BYTES:
        raise MalformedEnvelope("body too large for an SNS message")
    try:
        data = json_depth.loads(raw)
    except json_depth.JsonTooDeep as exc:
        raise MalformedEnvelope(str(exc)) from None
    except UnicodeDecodeError:
        raise MalformedEnvelope("body is not UTF-8") from None
    except ValueError:
        raise MalformedEnvelope("body is not JSON") from None
    except RecursionError:  # should the depth check ever miss a body: a 400, not a 500
        raise MalformedEnvelope("body nests too deep to parse") from None
    if not isinstance(data, dict):
        raise MalformedEnvelope("body is not a JSON object")
    kind = _field(data, "Type")
    if kind not in TYPES:
        raise MalformedEnvelope(f"unknown Type {for_log(kind, limit=40)}")
    confirmation = kind != NOTIFICATION
    envelope = Envelope(
        type=kind,
        message_id=_field(data, "MessageId") or "",
        topic_arn=_field(data, "TopicArn") or "",
        message=_field(data, "Message") or "",
        timestamp=_field(data, "Timestamp") or "",
        signature_version=_field(data, "SignatureVersion") or "",
        signature=_field(data, "Signature") or "",
        signing_cert_url=_field(data, "SigningCertURL") or "",
        subject=_field(data, "Subject", required=False),
        token=_field(data, "Token", required=confirmation),
        subscribe_url=_field(data, "SubscribeURL", required=confirmation),
        unsubscribe_url=_field(data, "UnsubscribeURL", required=False),
    )
    if envelope.message.lstrip().startswith(("{", "[")):
        # The alarm inside is JSON too, parsed once the signature holds.
        try:
            json_depth.check_depth(envelope.message)
        except json_depth.JsonTooDeep as exc:
            raise MalformedEnvelope(f"Message: {exc}") from None
    return envelope
