"""Who a GitHub Actions job is, read from the OpenID Connect token GitHub signed for it.

The runner's variables (`GITHUB_ACTOR`, `USER`) are whatever the workflow sets, so
they name nobody. The token is signed by GitHub's issuer with a key published at the
issuer's JWKS address, names its audience (opsbot's own, so a token minted for AWS or
anything else is refused) and the repository whose workflow asked for it. Only tokens
from the repositories in `rights.cli_github.repositories` are accepted.

A repository's name is freed the same way when it or its owner is renamed or
deleted; the token's `repository_id` is the repository's own number. An entry
`owner/name#<id>` accepts only that repository's tokens.

A login is a name GitHub frees when its account is renamed or deleted, and someone
else may register it; the token's `actor_id` is the account's own number, never
reused. A `rights.cli` key `github:<login>#<id>` names only that account.
"""

from __future__ import annotations

import re
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
# An account or repository id as GitHub writes it (a decimal string) and as `rights.cli`
# keys and `rights.cli_github.repositories` entries hold it.
ACCOUNT_ID = re.compile(r"[1-9][0-9]{0,19}")


@dataclass(frozen=True)
class GithubJob:
    """What a verified token says about the job that asked for it."""

    actor: str  # who started this run (or this re-run): a login, which can change hands
    actor_id: str | None  # that account's permanent number; None: the token names none for it
    repository: str
    repository_id: str | None  # the repository's permanent number; None: the token names none
    ref: str
    run_id: str
    token_id: str

    @property
    def identity(self) -> str:
        """`github:<actor>#<actor_id>`, or `github:<actor>` when the token carries no id."""
        if self.actor_id is None:
            return f"github:{self.actor}"
        return f"github:{self.actor}#{self.actor_id}"

    def key_in(self, mapped: Collection[str]) -> str:
        """The `rights.cli` key naming this job, else the identity a refusal should name.

        `github:<actor>#<id>` names the job when both the login and the id are the
        token's; `github:<actor>` (no id) names whoever holds the login now. A key with
        another id names another account, and no key with an id names a job whose
        token carries none.
        """
        if self.actor_id is not None:
            # GitHub's logins ignore case: `Octocat` is the account `octocat#583231` pins.
            pinned = _pinned(self.actor, self.actor_id)
            for key in mapped:
                if _pinned(*_login_and_id(key)) == pinned:
                    return key
        if f"github:{self.actor}" in mapped:
            return f"github:{self.actor}"
        return self.identity

    def renamed_from(self, mapped: Collection[str]) -> list[str]:
        """The keys of `mapped` with this job's account id under another login."""
        if self.actor_id is None:
            return []
        keys = {key: _login_and_id(key) for key in mapped if key.startswith("github:")}
        return sorted(
            key
            for key, (login, account_id) in keys.items()
            if account_id == self.actor_id and login.casefold() != self.actor.casefold()
        )


def _login_and_id(key: str) -> tuple[str, str | None]:
    """A `rights.cli` key's GitHub login and account id (None: the key names no id)."""
    login, _, account_id = key.removeprefix("github:").partition("#")
    return login, account_id or None


def _pinned(login: str, account_id: str | None) -> tuple[str, str | None]:
    return login.casefold(), account_id


def _pinned_repositories(repositories: Collection[str]) -> dict[str, str | None]:
    """Each `rights.cli_github.repositories` entry's `owner/name` -> its repository id
    (None: the entry names none, and accepts whichever repository holds the name)."""
    pinned: dict[str, str | None] = {}
    for entry in repositories:
        name, _, repository_id = entry.partition("#")
        pinned[name] = repository_id or pinned.get(name)
    return pinned


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
    pinned = _pinned_repositories(repositories)
    required: dict[str, Any] = {
        "iss": {"essential": True, "value": issuer},
        "aud": {"essential": True, "value": audience},
        "exp": {"essential": True},
        "repository": {"essential": True, "values": list(pinned)},
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
    repository = str(claims["repository"])
    repository_id = _account_id(claims.get("repository_id"))
    expected = pinned[repository]
    if expected is not None and repository_id != expected:
        # The name is the configured one, the repository another: it was renamed or
        # deleted, and someone registered the name again.
        raise TokenRefused(
            f"the GitHub OIDC token is of a repository named {repository} "
            f"{'with no id' if repository_id is None else f'with id {repository_id}'}, "
            f"not the one `rights.cli_github.repositories` pins ({repository}#{expected})"
        )
    # A re-run acts as whoever re-ran it, not as whoever started the first run. A
    # token that does not say who that is (GitHub's `actor` stays the first run's)
    # names nobody: acting as `actor` would act as someone else.
    attempt = str(claims.get("run_attempt") or "1")
    if attempt != "1" and not claims.get("triggering_actor"):
        raise TokenRefused(
            f"the GitHub OIDC token is of a re-run (attempt {attempt}) and names who started "
            "the first run, not who re-ran it: start a new run of the workflow"
        )
    actor = str(claims.get("triggering_actor") or claims["actor"])
    # `actor_id` is the number of the `actor` claim's account: a `triggering_actor`
    # other than it has no id in the token, and never borrows that one.
    account_id = _account_id(claims.get("actor_id")) if actor == str(claims["actor"]) else None
    return GithubJob(
        actor=actor,
        actor_id=account_id,
        repository=repository,
        repository_id=repository_id,
        ref=str(claims.get("ref", "")),
        run_id=str(claims.get("run_id", "")),
        token_id=str(claims.get("jti", "")),
    )


def _account_id(claim: object) -> str | None:
    """The account or repository number a claim holds (GitHub writes a decimal string),
    else None."""
    if isinstance(claim, int) and not isinstance(claim, bool):
        claim = str(claim)
    if isinstance(claim, str) and ACCOUNT_ID.fullmatch(claim):
        return claim
    return None


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
