"""`rights.cli` keys that pin a GitHub account by its id: `github:<login>#<id>`.

A login changes hands: its owner renames or deletes the account and someone else
registers the name. The token's `actor_id` is the account's own number, so a key
with an id names that account only, and `opsbot check-config` notes every key
without one. Keys without an id still name whoever holds the login.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import main
from bot.config import ConfigError, parse_config
from sandbox.github_oidc import GithubOidcIssuer
from tests.deploys.test_cli import (  # noqa: F401  # the CLI's environment and its issuer
    REPOSITORY,
    TOKEN,
    audit_trail,
    cli_env,
    deployments,
    github,
)
from tests.deploys.world import World
from tests.test_config import GOOD

OCTOCAT_ID = "1001"  # the account Alice's key names
NEWCOMER_ID = "2002"  # an account that registered the login after octocat let it go


def use_cli_keys(
    tmp_path: Path, base: dict[str, Any], monkeypatch: pytest.MonkeyPatch, cli: dict[str, str]
) -> None:
    """The CLI's config with `cli` for its `rights.cli`."""
    config = {**base, "rights": {**base["rights"], "cli": cli}}
    path = tmp_path / "pinned.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    monkeypatch.setenv("OPSBOT_CONFIG", str(path))


def log_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_the_account_a_key_pins_acts_and_the_log_names_its_login_and_id(
    tmp_path: Path,
    cli_env: dict[str, Any],  # noqa: F811
    world: World,
    github: GithubOidcIssuer,  # noqa: F811
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_cli_keys(tmp_path, cli_env, monkeypatch, {f"github:octocat#{OCTOCAT_ID}": "U0ALICE"})
    # GitHub's logins ignore case: the token may spell the pinned login otherwise.
    token = github.token(actor="Octocat", actor_id=OCTOCAT_ID, repository=REPOSITORY)
    monkeypatch.setenv(TOKEN, token)
    monkeypatch.setenv("OPSBOT_LOG_FORMAT", "json")

    assert main(["deploy", "api", "staging", "1.0.2"]) == 0

    captured = capsys.readouterr()
    assert "Deploy #1 of api 1.0.2 to api/staging started" in captured.out
    [row] = deployments(database_url)
    assert row.actor == "U0ALICE"
    [line] = [line for line in log_lines(captured.err) if line["msg"].startswith("CLI identity")]
    assert line["identity"] == f"github:octocat#{OCTOCAT_ID}"
    assert (line["github_login"], line["github_id"]) == ("Octocat", OCTOCAT_ID)
    assert "another login" not in captured.err  # no "renamed" warning for a case
    assert token not in captured.err


@pytest.mark.parametrize(
    ("claims", "named"),
    [
        pytest.param({"actor_id": NEWCOMER_ID}, f"github:octocat#{NEWCOMER_ID}", id="another id"),
        pytest.param({}, "github:octocat", id="no id"),
        pytest.param({"actor_id": "not-a-number"}, "github:octocat", id="no number"),
    ],
)
def test_the_login_of_a_pinned_key_without_its_account_is_refused_and_changes_nothing(
    claims: dict[str, str],
    named: str,
    tmp_path: Path,
    cli_env: dict[str, Any],  # noqa: F811
    world: World,
    github: GithubOidcIssuer,  # noqa: F811
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_cli_keys(tmp_path, cli_env, monkeypatch, {f"github:octocat#{OCTOCAT_ID}": "U0ALICE"})
    monkeypatch.setenv(TOKEN, github.token(actor="octocat", repository=REPOSITORY, **claims))

    assert main(["deploy", "api", "staging", "1.0.2"]) == 3

    out = capsys.readouterr().out
    assert f"refused: {named} is not a known CLI identity" in out
    assert "rights.cli" in out
    assert deployments(database_url) == []
    assert world.service_task_definition("staging") == world.task_definitions["staging"]
    assert audit_trail(database_url) == [("deploy.request", f"cli:{named}", "refused")]


def test_a_renamed_account_is_refused_until_its_key_is_renamed(
    tmp_path: Path,
    cli_env: dict[str, Any],  # noqa: F811
    world: World,
    github: GithubOidcIssuer,  # noqa: F811
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The key's login and id both name the account: when they disagree with the token's,
    # the operator says which is right (a rename, or a mistyped id), not the CLI.
    use_cli_keys(tmp_path, cli_env, monkeypatch, {f"github:octocat#{OCTOCAT_ID}": "U0ALICE"})
    monkeypatch.setenv(
        TOKEN, github.token(actor="octo-renamed", actor_id=OCTOCAT_ID, repository=REPOSITORY)
    )
    monkeypatch.setenv("OPSBOT_LOG_FORMAT", "json")

    assert main(["deploy", "api", "staging", "1.0.2"]) == 3

    captured = capsys.readouterr()
    assert f"refused: github:octo-renamed#{OCTOCAT_ID} is not a known CLI identity" in captured.out
    [hint] = [line for line in log_lines(captured.err) if line["level"] == "WARNING"]
    assert hint["mapped_as"] == [f"github:octocat#{OCTOCAT_ID}"]
    assert (hint["github_login"], hint["github_id"]) == ("octo-renamed", OCTOCAT_ID)
    assert deployments(database_url) == []
    assert audit_trail(database_url) == [
        ("deploy.request", f"cli:github:octo-renamed#{OCTOCAT_ID}", "refused")
    ]


def test_a_re_run_does_not_borrow_the_first_runs_account_id(
    tmp_path: Path,
    cli_env: dict[str, Any],  # noqa: F811
    world: World,
    github: GithubOidcIssuer,  # noqa: F811
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `actor_id` is the `actor` claim's account; a `triggering_actor` other than it has no
    # id in the token, so no key with an id names it.
    use_cli_keys(tmp_path, cli_env, monkeypatch, {f"github:carol-gh#{OCTOCAT_ID}": "U0ALICE"})
    token = github.token(
        actor="octocat", actor_id=OCTOCAT_ID, triggering_actor="carol-gh", repository=REPOSITORY
    )
    monkeypatch.setenv(TOKEN, token)

    assert main(["deploy", "api", "staging", "1.0.2"]) == 3

    assert "refused: github:carol-gh is not a known CLI identity" in capsys.readouterr().out
    assert deployments(database_url) == []
    assert audit_trail(database_url) == [("deploy.request", "cli:github:carol-gh", "refused")]


def test_a_key_without_an_id_still_names_whoever_holds_the_login(
    tmp_path: Path,
    cli_env: dict[str, Any],  # noqa: F811
    world: World,
    github: GithubOidcIssuer,  # noqa: F811
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_cli_keys(tmp_path, cli_env, monkeypatch, {"github:octocat": "U0ALICE"})
    monkeypatch.setenv(
        TOKEN, github.token(actor="octocat", actor_id=NEWCOMER_ID, repository=REPOSITORY)
    )

    assert main(["deploy", "api", "staging", "1.0.2"]) == 0

    [row] = deployments(database_url)
    assert row.actor == "U0ALICE"


def test_pinned_keys_are_valid_and_a_login_has_one_key() -> None:
    def problems(cli: dict[str, str]) -> list[str]:
        config = {"alarm_routes": [{"match": {}, "channel": "C0ALERTS"}], "rights": {"cli": cli}}
        try:
            parse_config(config)
        except ConfigError as exc:
            return exc.problems
        return []

    assert problems({"github:octocat#1001": "U0ALICE", "github:carol-gh": "U0CAROL"}) == []
    # Keys without an id differing in case loaded before ids existed: they still do.
    assert problems({"github:Octocat": "U0ALICE", "github:octocat": "U0ALICE"}) == []
    for bad in ("github:octocat#", "github:octocat#0123", "github:octocat#12a", "os:deploy#1"):
        [problem] = problems({bad: "U0ALICE"})
        assert problem.startswith(f"rights.cli.{bad}"), problem
    # A key without the id beside the pinned one would let any holder of the login in.
    for twice in (
        {"github:octocat": "U0ALICE", "github:octocat#1001": "U0ALICE"},
        {"github:Octocat": "U0ALICE", "github:octocat#1001": "U0ALICE"},
        {"github:octocat#1001": "U0ALICE", "github:octocat#2002": "U0BOB"},
    ):
        [problem] = problems(twice)
        assert problem.startswith("rights.cli") and "a GitHub login may have one key" in problem
        assert all(key in problem for key in twice), problem


def test_check_config_notes_every_github_key_without_an_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.yaml"
    cli = {"github:octocat": "U0ALICE", "github:carol-gh#3003": "U0CAROL", "os:deploy": "U0BOB"}
    path.write_text(GOOD + yaml.safe_dump({"rights": {"cli": cli}}), encoding="utf-8")

    assert main(["check-config", str(path)]) == 0

    notes = [
        line for line in capsys.readouterr().out.splitlines() if "names a GitHub login" in line
    ]
    assert notes == [
        "note: rights.cli key github:octocat names a GitHub login, which a rename or a "
        "deletion frees for anyone to register: pin the account as github:octocat#<id> "
        "(its id: gh api users/octocat --jq .id)"
    ]


def test_a_re_run_whose_token_names_only_the_first_runs_actor_is_refused(
    tmp_path: Path,
    cli_env: dict[str, Any],  # noqa: F811
    world: World,
    github: GithubOidcIssuer,  # noqa: F811
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GitHub's `actor` claim is who started the first run: on a re-run by someone else,
    # acting as it would act as someone else. Without `triggering_actor`, nobody.
    use_cli_keys(tmp_path, cli_env, monkeypatch, {f"github:octocat#{OCTOCAT_ID}": "U0ALICE"})
    claims = {"actor_id": OCTOCAT_ID, "run_attempt": "2", "triggering_actor": None}
    monkeypatch.setenv(TOKEN, github.token(actor="octocat", repository=REPOSITORY, **claims))

    assert main(["deploy", "api", "staging", "1.0.2"]) == 3

    out = capsys.readouterr().out
    assert "of a re-run (attempt 2)" in out and "start a new run" in out
    assert deployments(database_url) == []
    assert audit_trail(database_url) == [("deploy.request", "cli:unverified", "refused")]

    # The first attempt acts as before.
    claims = {"actor_id": OCTOCAT_ID, "run_attempt": "1", "triggering_actor": None}
    monkeypatch.setenv(TOKEN, github.token(actor="octocat", repository=REPOSITORY, **claims))
    assert main(["deploy", "api", "staging", "1.0.2"]) == 0
