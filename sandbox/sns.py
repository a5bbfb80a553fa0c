"""Signing SNS messages like AWS does, with a key and certificate of our own.

The certificate is served over HTTPS on loopback; a verifier configured with
`url_pattern` fetches it exactly as it would fetch SNS's. Subscription
confirmations are answered at `/confirm` and recorded. Messages are signed with
SignatureVersion 2 and stamped with `clock`'s time unless told otherwise.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import ssl
import threading
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from bot.clock import Clock, SystemClock
from bot.sns.envelope import NOTIFICATION, SUBSCRIPTION_CONFIRMATION, Envelope
from sandbox.server import HttpRequest, HttpResponse, LoopbackServer

HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
CERT_PATH = "/SimpleNotificationService-sandbox.pem"


def sns_timestamp(moment: dt.datetime) -> str:
    """A time as SNS writes it: UTC, milliseconds, `Z`."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class SnsSigner:
    def __init__(self, *, tls: ssl.SSLContext, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.sandbox.opsbot")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self.confirmations: list[dict[str, list[str]]] = []
        self.cert_fetches = 0
        self._lock = threading.Lock()
        self.server = LoopbackServer(self._handle, tls=tls)

    def start(self) -> SnsSigner:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def cert_url(self) -> str:
        return self.server.url + CERT_PATH

    @property
    def url_pattern(self) -> str:
        """What OPSBOT_SNS_CERT_URL_PATTERN must be for this signer's URLs to be trusted."""
        return rf"^https://127\.0\.0\.1:{self.server.port}/"

    def subscribe_url(self, token: str) -> str:
        return f"{self.server.url}/confirm?Action=ConfirmSubscription&Token={token}"

    def _handle(self, request: HttpRequest) -> HttpResponse:
        if request.path == CERT_PATH:
            with self._lock:
                self.cert_fetches += 1
            return HttpResponse(200, self.cert_pem, {"Content-Type": "application/x-pem-file"})
        if request.path == "/confirm":
            with self._lock:
                self.confirmations.append(request.query)
            return HttpResponse(
                200, b"<ConfirmSubscriptionResponse/>", {"Content-Type": "text/xml"}
            )
        return HttpResponse(404, b"not found")

    def sign(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """Fill in Signature for an envelope (its SignatureVersion chooses SHA1 or SHA256)."""
        parsed = Envelope(
            type=envelope["Type"],
            message_id=envelope["MessageId"],
            topic_arn=envelope["TopicArn"],
            message=envelope["Message"],
            timestamp=envelope["Timestamp"],
            signature_version=envelope["SignatureVersion"],
            signature="",
            signing_cert_url=envelope["SigningCertURL"],
            subject=envelope.get("Subject"),
            token=envelope.get("Token"),
            subscribe_url=envelope.get("SubscribeURL"),
        )
        algorithm = HASHES[envelope["SignatureVersion"]]()
        signature = self.key.sign(parsed.string_to_sign(), padding.PKCS1v15(), algorithm)
        return {**envelope, "Signature": base64.b64encode(signature).decode()}

    def notification(
        self,
        message: str,
        *,
        topic_arn: str,
        subject: str | None = None,
        message_id: str | None = None,
        version: str = "2",
        timestamp: dt.datetime | None = None,
        cert_url: str | None = None,
    ) -> dict[str, Any]:
        """A signed Notification; `cert_url` points it at another certificate (e.g. a forger's)."""
        envelope: dict[str, Any] = {
            "Type": NOTIFICATION,
            "MessageId": message_id or str(uuid.uuid4()),
            "TopicArn": topic_arn,
            "Message": message,
            "Timestamp": sns_timestamp(timestamp or self.clock.now()),
            "SignatureVersion": version,
            "SigningCertURL": cert_url or self.cert_url,
            "UnsubscribeURL": f"{self.server.url}/unsubscribe",
        }
        if subject is not None:
            envelope["Subject"] = subject
        return self.sign(envelope)

    def subscription_confirmation(self, *, topic_arn: str, version: str = "2") -> dict[str, Any]:
        token = uuid.uuid4().hex
        return self.sign(
            {
                "Type": SUBSCRIPTION_CONFIRMATION,
                "MessageId": str(uuid.uuid4()),
                "Token": token,
                "TopicArn": topic_arn,
                "Message": f"You have chosen to subscribe to the topic {topic_arn}.",
                "SubscribeURL": self.subscribe_url(token),
                "Timestamp": sns_timestamp(self.clock.now()),
                "SignatureVersion": version,
                "SigningCertURL": self.cert_url,
            }
        )


def body(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope).encode("utf-8")
