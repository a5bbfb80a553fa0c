"""GitHub Actions' OIDC issuer: its key set over HTTPS on loopback, and tokens it signs.

`issuer` is what the config's `rights.cli_github.issuer` must say for a verifier to
fetch this key set; `token()` mints what a job with `id-token: write` would get.
"""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

from sandbox.server import HttpRequest, HttpResponse, LoopbackServer

JWKS_PATH = "/.well-known/jwks"


class GithubOidcIssuer:
    def __init__(self, *, tls: ssl.SSLContext) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex})
        self.key_fetches = 0
        self._lock = threading.Lock()
        self.server = LoopbackServer(self._handle, tls=tls)

    def start(self) -> GithubOidcIssuer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def issuer(self) -> str:
        return self.server.url

    def token(
        self,
        *,
        actor: str,
        repository: str,
        audience: str = "opsbot",
        lifetime_s: int = 300,
        key: RSAKey | None = None,
        **claims: Any,
    ) -> str:
        """A token for a run of `repository` started by `actor`; `claims` override any claim.

        `key` signs with another key than the published one (a forgery).
        """
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "sub": f"repo:{repository}:ref:refs/heads/main",
            "repository": repository,
            "repository_owner": repository.split("/")[0],
            "ref": "refs/heads/main",
            "actor": actor,
            "triggering_actor": actor,
            "run_id": "1",
            "jti": uuid.uuid4().hex,
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime_s,
            **claims,
        }
        signer = key or self.key
        return jwt.encode({"alg": "RS256", "kid": signer.kid}, payload, signer)

    def _handle(self, request: HttpRequest) -> HttpResponse:
        if request.path != JWKS_PATH:
            return HttpResponse(404, b"not found")
        with self._lock:
            self.key_fetches += 1
        return HttpResponse.json({"keys": [self.key.as_dict(private=False)]})
