"""The apps of the configuration file: names /deploy can reach, one environment per ECS
service, the AWS account and region they live in, and what check-config notes of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import main
from bot.config import RESERVED_APP_NAMES, ConfigError, parse_config
from handlers.command_text import Usage
from handlers.deploys import parse_deploy, parse_releases, parse_rollback
from tests.deploys.conftest import deploy_config


def problems(config: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(config)
    return caught.value.problems


def with_environment(name: str, **settings: Any) -> dict[str, Any]:
    config = deploy_config()
    environments = config["apps"]["api"]["environments"]
    environments[name] = {**environments["staging"], **settings}
    return config


def test_an_alias_of_another_environments_service_is_refused_naming_both() -> None:
    # The alias has none of prod's approval, freeze or lock.
    config = with_environment("prod-fast", cluster="prod", service="api")
    assert problems(config) == [
        "apps: apps.api.environments.prod and apps.api.environments.prod-fast both name the "
        "ECS service 'api' of cluster 'prod': one environment per service, or one could change "
        "the other's service past its approvals, freezes and locks"
    ]


def test_the_same_service_named_by_arn_is_the_same_service() -> None:
    config = with_environment(
        "prod-fast",
        cluster="arn:aws:ecs:us-east-1:123456789012:cluster/prod",
        service="arn:aws:ecs:us-east-1:123456789012:service/prod/api",
    )
    assert problems(config)[0].startswith(
        "apps: apps.api.environments.prod and apps.api.environments.prod-fast both name"
    )


def test_another_apps_environment_on_the_same_service_is_refused_too() -> None:
    config = deploy_config()
    config["apps"]["web"] = {
        "environments": {"prod": config["apps"]["api"]["environments"]["prod"]}
    }
    assert problems(config)[0].startswith(
        "apps: apps.api.environments.prod and apps.web.environments.prod both name"
    )


def test_a_service_of_the_same_name_in_another_cluster_is_another_service() -> None:
    parse_config(with_environment("qa", cluster="qa", service="api"))


@pytest.mark.parametrize("name", sorted(RESERVED_APP_NAMES))
def test_an_app_named_as_a_deploy_verb_is_refused(name: str) -> None:
    config = deploy_config()
    config["apps"][name] = config["apps"].pop("api")
    assert problems(config) == [
        f"apps.{name}: is a word /deploy reads as its own (`/deploy {name} ...`), so this app "
        "could not be deployed from Slack: rename it"
    ]


@pytest.mark.parametrize("name", sorted(RESERVED_APP_NAMES))
def test_the_reserved_names_are_what_the_commands_take_for_their_own(name: str) -> None:
    # What the handlers would do with an app of this name: never deploy it.
    try:
        verb = parse_deploy(f"{name} prod 1.0.2").verb
    except Usage:  # the verb's own usage
        verb = name
    assert verb != "deploy"
    if name == "help":
        assert parse_rollback(f"{name} prod").verb == "help"
        assert parse_releases(name).verb == "help"


@pytest.mark.parametrize(
    ("aws", "problem"),
    [
        ({"account_id": "12345678901"}, "aws.account_id: must be a 12-digit AWS account id"),
        # YAML's octal: 012345670123 unquoted is no longer the id written.
        ({"account_id": 0o12345670123}, "aws.account_id: must be a 12-digit AWS account id"),
        ({"region": "Europe"}, "aws.region: must be an AWS region code, e.g. us-east-1"),
        ({"zone": "a"}, "aws.zone: unknown key"),
    ],
)
def test_aws_mistakes_name_their_key(aws: dict[str, Any], problem: str) -> None:
    assert any(p.startswith(problem) for p in problems(deploy_config(aws=aws)))


def test_an_unquoted_account_id_of_twelve_digits_is_taken_as_written() -> None:
    text = "aws:\n  account_id: 123456789012\n  region: eu-west-1\n"
    aws = parse_config({**deploy_config(), **yaml.safe_load(text)}).aws
    assert (aws.account_id, aws.region) == ("123456789012", "eu-west-1")


def check_config(tmp_path: Path, config: dict[str, Any], capsys: Any) -> list[str]:
    path = tmp_path / "opsbot.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["check-config", "--offline", str(path)]) == 0
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]


def test_check_config_notes_apps_changed_wherever_aws_points(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = check_config(tmp_path, deploy_config(), capsys)
    assert (
        "note: aws.region is not set: apps are changed in whichever region AWS_REGION names "
        "where opsbot runs (for opsbot deploy, the pipeline's), where a cluster and service of "
        "the same names may be another's"
    ) in notes
    assert (
        "note: aws.account_id is not set: apps.api.environments.prod is changed in whichever "
        "account the credentials opsbot runs with are of"
    ) in notes

    pinned = deploy_config(aws={"account_id": "123456789012", "region": "us-east-1"})
    assert not [n for n in check_config(tmp_path, pinned, capsys) if n.startswith("note: aws.")]


def test_check_config_notes_cli_deploys_announced_nowhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = deploy_config(rights={"cli": {"github:octocat#1": "U0ALICE"}})
    del config["apps"]["api"]["environments"]["staging"]["release_channel"]
    note = (
        "note: apps.api.environments.staging has no release_channel: a deploy from the CLI "
        "(opsbot deploy) is announced nowhere, so nobody in Slack hears how it ended"
    )
    assert note in check_config(tmp_path, config, capsys)

    # Nobody the CLI acts as may deploy it: nothing to note.
    config["rights"]["cli"] = {"github:octocat#1": "U0CAROL"}
    assert note not in check_config(tmp_path, config, capsys)
