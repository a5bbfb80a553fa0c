"""`rights.cli_github.repositories` entries that pin a repository by its id: `owner/name#<id>`.

A repository's name changes hands: its owner renames or deletes it (or the
organisation), and someone else registers the name. The token's `repository_id`
is the repository's own number, so an entry with an id accepts that repository's
tokens only, and `opsbot check-config` notes every entry without one. Entries
without an id still accept whichever repository holds the name.
"""

from __future__ import annotations

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

OPSBOT_ID = "4004"  # acme/opsbot, the repository the entry pins
SQUATTER_ID = "5005"  # a repository registered under the name after acme/opsbot let it go


def use_repositories(
    tmp_path: Path, base: dict[str, Any], monkeypatch: pytest.MonkeyPatch, repositories: list[str]
) -> None:
    """The CLI's config with `repositories` for its `rights.cli_github.repositories`."""
    accepted = {**base["rights"]["cli_github"], "repositories": repositories}
    config = {**base, "rights": {**base["rights"], "cli_github": accepted}}
    path = tmp_path / "pinned.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    monkeypatch.setenv("OPSBOT_CONFIG", str(path))


@pytest.mark.parametrize(
    "repository_id", [pytest.param(OPSBOT_ID, id="string"), pytest.param(4004, id="number")]
)
def test_the_repository_an_entry_pins_acts(
    repository_id: str | int,
    tmp_path: Path,
    cli_env: dict[str, Any],  # noqa: F811
    world: World,
    github: GithubOidcIssuer,  # noqa: F811
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_repositories(tmp_path, cli_env, monkeypatch, [f"{REPOSITORY}#{OPSBOT_ID}"])
    token = github.token(actor="octocat", repository=REPOSITORY, repository_id=repository_id)
    monkeypatch.setenv(TOKEN, token)

    assert main(["deploy", "api", "staging", "1.0.2"]) == 0

    assert "Deploy #1 of api 1.0.2 to api/staging started" in capsys.readouterr().out
    [row] = deployments(database_url)
    assert row.actor == "U0ALICE"


@pytest.mark.parametrize(
    ("claims", "named"),
    [
        pytest.param({"repository_id": SQUATTER_ID}, f"with id {SQUATTER_ID}", id="another id"),
        pytest.param({}, "with no id", id="no id"),
        pytest.param({"repository_id": "not-a-number"}, "with no id", id="no number"),
    ],
)
def test_the_name_of_a_pinned_repository_without_the_repository_is_refused(
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
    use_repositories(tmp_path, cli_env, monkeypatch, [f"{REPOSITORY}#{OPSBOT_ID}"])
    monkeypatch.setenv(TOKEN, github.token(actor="octocat", repository=REPOSITORY, **claims))

    assert main(["deploy", "api", "staging", "1.0.2"]) == 3

    assert capsys.readouterr().out == (
        f"refused: the GitHub OIDC token is of a repository named {REPOSITORY} {named}, not "
        f"the one rights.cli_github.repositories pins ({REPOSITORY}#{OPSBOT_ID})\n"
    )
    assert deployments(database_url) == []
    assert world.service_task_definition("staging") == world.task_definitions["staging"]
    assert audit_trail(database_url) == [("deploy.request", "cli:unverified", "refused")]


def test_an_entry_without_an_id_still_accepts_whichever_repository_holds_the_name(
    tmp_path: Path,
    cli_env: dict[str, Any],  # noqa: F811
    world: World,
    github: GithubOidcIssuer,  # noqa: F811
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_repositories(tmp_path, cli_env, monkeypatch, ["acme/other#6006", REPOSITORY])
    token = github.token(actor="octocat", repository=REPOSITORY, repository_id=SQUATTER_ID)
    monkeypatch.setenv(TOKEN, token)

    assert main(["deploy", "api", "staging", "1.0.2"]) == 0

    [row] = deployments(database_url)
    assert row.actor == "U0ALICE"


def test_pinned_entries_are_valid_and_a_repository_is_listed_once() -> None:
    def problems(repositories: list[str]) -> list[str]:
        config = {
            "alarm_routes": [{"match": {}, "channel": "C0ALERTS"}],
            "rights": {"cli_github": {"repositories": repositories}},
        }
        try:
            parse_config(config)
        except ConfigError as exc:
            return exc.problems
        return []

    assert problems(["acme/opsbot#4004", "acme/tools"]) == []
    # Entries without an id differing in case loaded before ids existed: they still do.
    assert problems(["Acme/opsbot", "acme/opsbot"]) == []
    for bad in ("acme/opsbot#", "acme/opsbot#0123", "acme/opsbot#12a", "acme#1"):
        [problem] = problems([bad])
        assert problem.startswith("rights.cli_github.repositories[0]"), problem
    # An entry without the id beside the pinned one would accept any holder of the name.
    for twice in (
        ["acme/opsbot", "acme/opsbot#4004"],
        ["Acme/Opsbot", "acme/opsbot#4004"],
        ["acme/opsbot#4004", "acme/opsbot#5005"],
    ):
        [problem] = problems(twice)
        assert problem.startswith("rights.cli_github.repositories"), problem
        assert "a GitHub repository may be listed once" in problem
        assert all(entry in problem for entry in twice), problem


def test_check_config_notes_every_repository_without_an_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "repositories.yaml"
    rights = {"cli_github": {"repositories": ["acme/opsbot", "acme/tools#7007"]}}
    path.write_text(GOOD + yaml.safe_dump({"rights": rights}), encoding="utf-8")

    assert main(["check-config", str(path)]) == 0

    notes = [line for line in capsys.readouterr().out.splitlines() if "names a repository" in line]
    assert notes == [
        "note: rights.cli_github.repositories entry acme/opsbot names a repository by its "
        "name, which renaming or deleting it or its owner frees for anyone to register: pin "
        "it as acme/opsbot#<id> (its id: gh api repos/acme/opsbot --jq .id)"
    ]
