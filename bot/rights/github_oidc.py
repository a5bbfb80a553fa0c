"""Who a GitHub Actions job is, read from the OpenID Connect token GitHub signed for it.

The runner's variables (`GITHUB_ACTOR`, `USER`) are whatever the workflow sets, so
they name nobody. The token is signed by GitHub's issuer with a key published at the
issuer's JWKS address, names its audience (opsbot's own, so a token minted for AWS or
anything else is refused) and the repository whose workflow asked for it. Only tokens
from the repositories in `rights.cli_github.repositories` are accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from bot import json_depth
from bot.rights.errors import TokenRefused

# GitHub's tokens are about 1 KB; anything much larger is not one.
MAX_TOKEN_CHARS = 16 * 1024
MAX_JWKS_DEPTH = 8
# Clock skew between the runner, GitHub and the task that reads the token.
LEEWAY_S = 60


@dataclass(frozen=True)
class GithubJob:
    """What a verified token says about the job that asked for it."""

    actor: str  # who started this run (or this re-run)
    repository: str
    ref: str
    run_id: str
    token_id: str

    @property
    def identity(self) -> str:
        """The CLI identity `rights.cli` maps: `github:<actor>`."""
        return f"github:{self.actor}"


def verify(
    token: str,
    *,
    issuer: str,
    repositories: Collection[str],
    fetch: Callable[[str], bytes],
    audience: str,
    now: int,
    environments: Collection[str] = (),
) -> GithubJob:
    """The job `token` was minted for; TokenRefused unless GitHub signed it for opsbot.

    `fetch` is a bounded HTTPS GET; the key set comes from the configured issuer
    only, never from an address the token names.
    """
    if not repositories:
        raise TokenRefused(
            "no GitHub repository may act through the CLI: list yours in the config's "
            "`rights.cli_github.repositories` (e.g. `acme/opsbot`)"
        )
    if len(token) > MAX_TOKEN_CHARS or not token.strip():
        raise TokenRefused("the GitHub OIDC token is empty or too long to be one")
    keys = _key_set(issuer, fetch)
    required: dict[str, Any] = {
        "iss": {"essential": True, "value": issuer},
        "aud": {"essential": True, "value": audience},
        "exp": {"essential": True},
        "repository": {"essential": True, "values": list(repositories)},
        "actor": {"essential": True},
    }
    if environments:
        required["environment"] = {"essential": True, "values": list(environments)}
    try:
        claims = jwt.decode(token.strip(), keys, algorithms=["RS256"]).claims
        jwt.JWTClaimsRegistry(now=now, leeway=LEEWAY_S, **required).validate(claims)
    except (JoseError, ValueError, RecursionError) as exc:
        # RecursionError: a header or payload nested past the JSON decoder's depth.
        raise TokenRefused(f"the GitHub OIDC token is not valid for opsbot: {exc}") from None
    # A re-run acts as whoever re-ran it, not as whoever started the first run.
    actor = claims.get("triggering_actor") or claims["actor"]
    return GithubJob(
        actor=str(actor),
        repository=str(claims["repository"]),
        ref=str(claims.get("ref", "")),
        run_id=str(claims.get("run_id", "")),
        token_id=str(claims.get("jti", "")),
    )


def _key_set(issuer: str, fetch: Callable[[str], bytes]) -> KeySet:
    """The issuer's signing keys, fetched from `<issuer>/.well-known/jwks`."""
    if not issuer.startswith("https://"):
        raise TokenRefused(f"the OIDC issuer must be an https:// address, not {issuer!r}")
    url = issuer.rstrip("/") + "/.well-known/jwks"
    try:
        body = fetch(url)
    except Exception as exc:  # the fetch says why in its own words (FetchFailed)
        raise TokenRefused(f"GitHub's signing keys could not be read from {url}: {exc}") from None
    try:
        return KeySet.import_key_set(json_depth.loads(body, limit=MAX_JWKS_DEPTH))
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise TokenRefused(f"{url} did not answer a key set: {exc}") from None
