"""Verifying SNS messages as AWS documents it, without a slow certificate host holding anyone up.

`precheck` refuses on its face, before anything is fetched, a SignatureVersion
not allowed, a SigningCertURL off the pattern or of a region other than its
topic's, and a Timestamp too far from now.
Certificates are cached by URL, and so are failures (a bad URL costs one fetch,
not one per message); at most `fetches_at_once` distinct ones are fetched at a
time, each once, in threads of their own. A caller that needs a fetch waits on
a future; one whose key is known never waits for anybody's fetch.

A certificate fetched is handed to `on_fetched` (the runtime keeps it in the
database), and `preload` puts certificates kept so into the cache at start: a
restarted instance verifies the first notification after a deploy without
fetching again.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bot.aws_regions import ANY_PARTITION_OF, DOMAINS
from bot.clock import Clock
from bot.sns.envelope import Envelope, for_log
from bot.sns.fetch import FetchFailed

log = logging.getLogger(__name__)

HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
CACHE_SIZE = 32
FAILURES_REMEMBERED = 256
FETCHES_AT_ONCE = 4
# The alarm queue takes messages only from the topic (its policy says so), so its
# fetches have slots of their own: a flood of forged certificate URLs on the
# public endpoint cannot keep the queue's genuine messages from being verified.
QUEUE_FETCHES_AT_ONCE = 2
PUBLIC = "public"  # /sns over HTTPS: anyone can send anything
QUEUE = "queue"  # the alarm queue: only the topic sends
# A failure that says the URL is wrong (404, not a certificate) is remembered for
# long; one that may pass (timeout, 5xx, or ours: no thread to fetch with) for less
# than SNS waits between retries (20 s), so a retry of a genuine message fetches again.
FAILURE_TTL = timedelta(minutes=5)
TRANSIENT_FAILURE_TTL = timedelta(seconds=15)
# SNS's own host in a region: `sns.us-east-1.amazonaws.com`, `sns.cn-north-1.amazonaws.com.cn`.
SNS_HOST = re.compile(r"^sns\.([^.]+)\.(amazonaws\.com(?:\.cn)?)$")
# AWS's own validators refuse messages more than an hour old; a message that is
# more than an hour in the future is not from SNS either.
MAX_AGE = timedelta(hours=1)
MAX_AHEAD = timedelta(hours=1)


class SignatureInvalid(Exception):
    """The message cannot be trusted; the text says why (safe to log)."""


class CertificateRefused(SignatureInvalid):
    """The certificate URL gave no usable certificate (404, not a PEM, not RSA).

    On the public endpoint, as any other failed check: its URL is the sender's
    choice. On the alarm queue, which only the topic sends to, the message is
    genuine and the failure is ours (an egress proxy refusing, a certificate
    retired before a redrive): it is left for the dead-letter queue, not deleted.
    """


class UrlNotAllowed(SignatureInvalid):
    """A certificate or subscription URL opsbot fetches nothing from: refused before any fetch."""


class CertificateNotTopics(UrlNotAllowed):
    """A SigningCertURL on SNS's host in a region other than the message's topic's.

    SNS signs a topic's messages with its own region's certificate, so on the
    public endpoint such a URL is a forgery, refused before it holds a fetch
    slot (a far region's host answers slowly). The alarm queue, which only the
    topic sends to, leaves such a message for the dead-letter queue instead of
    deleting it: should SNS ever sign otherwise, no alarm is lost.
    """


class SignatureVersionNotAllowed(SignatureInvalid):
    """SignatureVersion 1 while the operator has not allowed it."""


class CertificateUnavailable(Exception):
    """The signing certificate cannot be had now (slow or failing host, too many fetches,
    no thread to fetch with).

    Not a verdict on the message: trying again later may succeed.
    """


def check_url(
    url: str, pattern: re.Pattern[str], *, pem: bool = False, topic_arn: str = ""
) -> None:
    """Refuse (UrlNotAllowed) a URL off the pattern, not https, with userinfo or tricks,
    on an SNS host of no AWS region (`region_refusal`), or (certs) not a .pem."""
    if not pattern.match(url):
        raise UrlNotAllowed(f"URL not allowed: {for_log(url)}")
    parts = urlsplit(url)
    if (
        parts.scheme != "https"
        or "@" in parts.netloc
        or "\\" in url
        or any(ord(c) < 33 or ord(c) == 127 for c in url)
    ):
        raise UrlNotAllowed(f"URL not allowed: {for_log(url)}")
    why = region_refusal(parts.hostname or "", topic_arn=topic_arn)
    if why is not None:
        raise UrlNotAllowed(f"URL not allowed: {for_log(url)} ({why})")
    if pem and (not parts.path.endswith(".pem") or parts.query or parts.fragment):
        raise UrlNotAllowed("signing certificate URL must name a .pem file, nothing more")


def region_refusal(host: str, *, topic_arn: str = "") -> str | None:
    """Why an SNS host (`sns.<region>.amazonaws.com`) is no AWS region's, or None.

    A host of another form is the pattern's business (an operator's own). A
    region that does not exist has no certificate to fetch: its host answers
    nothing, which would look like an outage of AWS's (retry later) and hold a
    fetch slot each time. So it is refused on its face, as a forgery. The region
    of the message's topic (`topic_arn`) is taken too, in the topic's partition:
    a region newer than bot/aws_regions.py loses no alarm. (/sns has checked the
    topic is allowed by then; the alarm queue takes messages from the topic only.)
    """
    found = SNS_HOST.match(host.lower().rstrip("."))
    if found is None:
        return None
    region, domain = found.groups()
    partition = ANY_PARTITION_OF.get(region)
    topic_partition, topic_region = _partition_and_region(topic_arn)
    if partition is None and region == topic_region:
        partition = topic_partition
    if partition is None:
        return f"{for_log(region)} is not an AWS region"
    # An isolated partition's own domain is none of these: its regions are taken under
    # amazonaws.com as the default pattern admits them.
    if DOMAINS.get(partition, domain) != domain:
        return f"{for_log(region)} is not a region of {for_log(domain)}"
    return None


def topic_region_refusal(url: str, topic_arn: str) -> str | None:
    """Why a certificate URL on SNS's own host is not of `topic_arn`'s region, or None.

    A host of another form (an operator's own, by the pattern) has no region to compare.
    """
    host = (urlsplit(url).hostname or "").rstrip(".")
    found = SNS_HOST.match(host)
    if found is None:
        return None
    _, topic_region = _partition_and_region(topic_arn)
    if topic_region is None:
        return f"the topic {for_log(topic_arn)} names no region"
    if found.group(1) != topic_region:
        return f"region {for_log(found.group(1))} is not the topic's ({for_log(topic_region)})"
    return None


def _partition_and_region(arn: str) -> tuple[str | None, str | None]:
    """`aws`, `us-east-1` of `arn:aws:sns:us-east-1:123456789012:alarms`; None for what it lacks."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None, None
    return parts[1] or None, parts[3] or None


def parse_timestamp(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise SignatureInvalid(f"Timestamp is not an ISO 8601 time: {for_log(value)}") from None
    if moment.tzinfo is None:
        raise SignatureInvalid(f"Timestamp has no time zone: {for_log(value)}")
    return moment


@dataclass(frozen=True)
class _Failure:
    until: datetime
    transient: bool
    message: str

    def error(self) -> Exception:
        # A new exception each time: one instance raised in several threads would
        # collect all their tracebacks.
        if self.transient:
            return CertificateUnavailable(self.message)
        return CertificateRefused(self.message)


class SnsVerifier:
    def __init__(
        self,
        *,
        url_pattern: re.Pattern[str],
        fetch: Callable[[str], bytes],
        clock: Clock,
        allow_signature_v1: bool = False,
        fetches_at_once: int = FETCHES_AT_ONCE,
        queue_fetches_at_once: int = QUEUE_FETCHES_AT_ONCE,
        wait_s: float = 10.0,
        on_fetched: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.url_pattern = url_pattern
        self.fetch = fetch
        self.clock = clock
        self.allow_signature_v1 = allow_signature_v1
        self.slots = {PUBLIC: fetches_at_once, QUEUE: queue_fetches_at_once}
        self.wait_s = wait_s  # the longest `verify` waits for a certificate
        self.on_fetched = on_fetched
        self._certs: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        self._failures: OrderedDict[str, _Failure] = OrderedDict()
        # Each fetch on its way, by URL: its future, and the lane whose slot it holds.
        self._fetching: dict[str, tuple[Future[rsa.RSAPublicKey], str]] = {}
        self._lock = threading.Lock()

    # -- checks that need nothing fetched ------------------------------------------------

    def precheck(
        self,
        envelope: Envelope,
        *,
        max_age: timedelta | None = MAX_AGE,
        allow_signature_v1: bool | None = None,
    ) -> None:
        """Refuse what is wrong on its face: version, certificate URL, Timestamp, encoding.

        `max_age=None` bounds only how far ahead the Timestamp may be (the queue,
        which can hold a message for days); `allow_signature_v1` overrides the
        operator's choice (to tell a genuine version-1 message from a forgery).
        """
        if envelope.signature_version not in HASHES:
            raise SignatureInvalid(
                f"unsupported SignatureVersion {for_log(envelope.signature_version)}"
            )
        if allow_signature_v1 is None:
            allow_signature_v1 = self.allow_signature_v1
        if envelope.signature_version == "1" and not allow_signature_v1:
            raise SignatureVersionNotAllowed(
                "SignatureVersion 1 is not allowed (sign the topic with SignatureVersion 2,"
                " or set OPSBOT_SNS_ALLOW_SIGNATURE_V1=true)"
            )
        check_url(
            envelope.signing_cert_url, self.url_pattern, pem=True, topic_arn=envelope.topic_arn
        )
        why = topic_region_refusal(envelope.signing_cert_url, envelope.topic_arn)
        if why is not None:
            raise CertificateNotTopics(
                f"signing certificate URL {for_log(envelope.signing_cert_url)}: {why}"
            )
        moment = parse_timestamp(envelope.timestamp)
        now = self.clock.now()
        if max_age is not None and moment < now - max_age:
            raise SignatureInvalid(f"Timestamp {for_log(envelope.timestamp)} is too old")
        if moment > now + MAX_AHEAD:
            raise SignatureInvalid(f"Timestamp {for_log(envelope.timestamp)} is in the future")
        _signature_bytes(envelope)

    def check_signature(self, envelope: Envelope, key: rsa.RSAPublicKey) -> None:
        """The signature over the canonical string, with a key from `cached_key`/`key_future`."""
        algorithm = HASHES[envelope.signature_version]
        try:
            key.verify(
                _signature_bytes(envelope),
                envelope.string_to_sign(),
                padding.PKCS1v15(),
                algorithm(),
            )
        except InvalidSignature:
            raise SignatureInvalid("signature does not match") from None

    def verify(
        self,
        envelope: Envelope,
        *,
        max_age: timedelta | None = MAX_AGE,
        allow_signature_v1: bool | None = None,
        lane: str = PUBLIC,
    ) -> None:
        """Everything, blocking (for threads of their own: the queue consumer, tests).

        Raises SignatureInvalid (never to be trusted) or CertificateUnavailable (try later).
        """
        self.precheck(envelope, max_age=max_age, allow_signature_v1=allow_signature_v1)
        url = envelope.signing_cert_url
        key = self.cached_key(url)
        if key is None:
            try:
                key = self.key_future(url, lane=lane).result(timeout=self.wait_s)
            except FutureTimeout:
                raise CertificateUnavailable("signing certificate: still fetching") from None
        self.check_signature(envelope, key)

    # -- certificates ----------------------------------------------------------------

    def cached_key(self, url: str) -> rsa.RSAPublicKey | None:
        """The key if it is known; raises the failure if fetching it failed lately; else None."""
        with self._lock:
            return self._known(url)

    def key_future(self, url: str, *, lane: str = PUBLIC) -> Future[rsa.RSAPublicKey]:
        """The key, fetched once in a thread of its own, however many callers ask.

        Raises CertificateUnavailable at once when the `lane`'s slots (`slots`)
        are all taken by other certificates being fetched: a flood of distinct
        URLs gets no more threads or sockets than that, and takes only its own
        lane's.
        """
        with self._lock:
            on_its_way = self._fetching.get(url)
            if on_its_way is not None:
                return on_its_way[0]
            future: Future[rsa.RSAPublicKey] = Future()
            future.set_running_or_notify_cancel()  # a waiter that gives up cannot cancel it
            try:
                key = self._known(url)
            except Exception as exc:
                future.set_exception(exc)
                return future
            if key is not None:
                future.set_result(key)
                return future
            taken = sum(1 for _, held in self._fetching.values() if held == lane)
            if taken >= self.slots[lane]:
                raise CertificateUnavailable(
                    f"{taken} signing certificates are being fetched already ({lane})"
                )
            self._fetching[url] = (future, lane)
        try:
            threading.Thread(
                target=self._fetch_into, args=(url, future), name="sns-certificate", daemon=True
            ).start()
        except RuntimeError:  # no thread to be had
            with self._lock:
                self._fetching.pop(url, None)
            raise CertificateUnavailable("cannot start a certificate fetch") from None
        return future

    def preload(self, url: str, pem: bytes) -> bool:
        """Cache a certificate fetched earlier from `url`; False when the URL is off the
        pattern or the PEM holds no RSA certificate (it is then fetched when needed)."""
        try:
            check_url(url, self.url_pattern, pem=True)
            key = _rsa_key(pem)
        except SignatureInvalid:
            return False
        with self._lock:
            self._remember(url, key)
        return True

    def _remember(self, url: str, key: rsa.RSAPublicKey) -> None:
        """Cache `key` for `url`, the least recently used going past CACHE_SIZE (under the lock)."""
        self._certs[url] = key
        while len(self._certs) > CACHE_SIZE:
            self._certs.popitem(last=False)

    def _known(self, url: str) -> rsa.RSAPublicKey | None:
        key = self._certs.get(url)
        if key is not None:
            self._certs.move_to_end(url)
            return key
        failure = self._failures.get(url)
        if failure is not None:
            if failure.until > self.clock.now():
                raise failure.error()
            del self._failures[url]
        return None

    def _fetch_into(self, url: str, future: Future[rsa.RSAPublicKey]) -> None:
        try:
            key, pem = self._load(url)
        except Exception as exc:
            transient = isinstance(exc, CertificateUnavailable)
            if not isinstance(exc, SignatureInvalid | CertificateUnavailable):
                exc = CertificateRefused(f"cannot load signing certificate: {type(exc).__name__}")
            ttl = TRANSIENT_FAILURE_TTL if transient else FAILURE_TTL
            failure = _Failure(until=self.clock.now() + ttl, transient=transient, message=str(exc))
            with self._lock:
                self._failures[url] = failure
                while len(self._failures) > FAILURES_REMEMBERED:
                    self._failures.popitem(last=False)
                self._fetching.pop(url, None)
            future.set_exception(failure.error())
            return
        with self._lock:
            self._remember(url, key)
            self._fetching.pop(url, None)
        future.set_result(key)
        if self.on_fetched is not None:
            self.on_fetched(url, pem)

    def _load(self, url: str) -> tuple[rsa.RSAPublicKey, bytes]:
        try:
            pem = self.fetch(url)
        except FetchFailed as exc:
            if exc.transient:
                raise CertificateUnavailable(f"cannot fetch signing certificate: {exc}") from None
            raise CertificateRefused(f"cannot fetch signing certificate: {exc}") from None
        except Exception as exc:
            # No answer from the host, so no verdict on the certificate: the failure is
            # ours (no thread to be had, a fault in the fetch). Refusing would cache a 403
            # for the genuine certificate, and SNS retries only 5xx: tried again soon.
            log.warning("fetching signing certificate %s failed", for_log(url), exc_info=True)
            raise CertificateUnavailable(
                f"cannot fetch signing certificate: {type(exc).__name__}"
            ) from None
        return _rsa_key(pem), pem


def _rsa_key(pem: bytes) -> rsa.RSAPublicKey:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise CertificateRefused("signing certificate is not a PEM certificate") from None
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CertificateRefused("signing certificate does not hold an RSA key")
    return key


def _signature_bytes(envelope: Envelope) -> bytes:
    try:
        return base64.b64decode(envelope.signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureInvalid("signature is not base64") from None
