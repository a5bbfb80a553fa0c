"""Verifying SNS signatures (SignatureVersion 1: SHA1, 2: SHA256, RSA PKCS#1 v1.5).

A certificate is only ever fetched from a URL that matches the configured
pattern (by default SNS's own hosts), over the pattern's scheme, with a path
ending in `.pem`; certificates are cached by URL.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bot.sns.envelope import Envelope

HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
CACHE_SIZE = 32


class SignatureInvalid(Exception):
    """The message cannot be trusted; the text says why (safe to log)."""


def check_url(url: str, pattern: re.Pattern[str], *, pem: bool = False) -> None:
    """Refuse a URL off the pattern, with credentials or tricks, or (for certs) not a .pem."""
    if not pattern.match(url):
        raise SignatureInvalid(f"URL not allowed: {url[:200]}")
    parts = urlsplit(url)
    if "@" in parts.netloc or "\\" in url or any(ord(c) < 33 for c in url):
        raise SignatureInvalid(f"URL not allowed: {url[:200]}")
    if pem and (not parts.path.endswith(".pem") or parts.query or parts.fragment):
        raise SignatureInvalid("signing certificate URL must name a .pem file, nothing more")


class SnsVerifier:
    def __init__(self, *, url_pattern: re.Pattern[str], fetch: Callable[[str], bytes]) -> None:
        self.url_pattern = url_pattern
        self.fetch = fetch
        self._certs: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}

    def _cached(self, url: str) -> rsa.RSAPublicKey | None:
        with self._lock:
            if url in self._certs:
                self._certs.move_to_end(url)
                return self._certs[url]
        return None

    def _public_key(self, url: str) -> rsa.RSAPublicKey:
        key = self._cached(url)
        if key is not None:
            return key
        # One fetch per URL: the first messages of a storm all miss the cache at
        # once, and should wait for that fetch rather than each make their own.
        with self._lock:
            fetching = self._fetching.setdefault(url, threading.Lock())
        with fetching:
            key = self._cached(url)
            if key is None:
                key = self._load(url)
        with self._lock:
            self._fetching.pop(url, None)
        return key

    def _load(self, url: str) -> rsa.RSAPublicKey:
        try:
            cert = x509.load_pem_x509_certificate(self.fetch(url))
        except SignatureInvalid:
            raise
        except Exception as exc:
            raise SignatureInvalid(
                f"cannot load signing certificate: {type(exc).__name__}"
            ) from None
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SignatureInvalid("signing certificate does not hold an RSA key")
        with self._lock:
            self._certs[url] = key
            while len(self._certs) > CACHE_SIZE:
                self._certs.popitem(last=False)
        return key

    def verify(self, envelope: Envelope) -> None:
        algorithm = HASHES.get(envelope.signature_version)
        if algorithm is None:
            raise SignatureInvalid(f"unsupported SignatureVersion {envelope.signature_version!r}")
        check_url(envelope.signing_cert_url, self.url_pattern, pem=True)
        try:
            signature = base64.b64decode(envelope.signature, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureInvalid("signature is not base64") from None
        key = self._public_key(envelope.signing_cert_url)
        try:
            key.verify(signature, envelope.string_to_sign(), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise SignatureInvalid("signature does not match") from None
