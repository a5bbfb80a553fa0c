"""The `deploys:` section of the configuration file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.cli import main
from bot.config import ConfigError, parse_config
from tests.conftest import TEST_CONFIG
from tests.deploys.conftest import deploy_config


def test_defaults_without_a_deploys_section() -> None:
    knobs = parse_config(TEST_CONFIG).deploys
    assert (knobs.poll_interval_s, knobs.stuck_after_min, knobs.confirm_ttl_min) == (15, 20, 30)
    assert knobs.blocking_severities == ["CRITICAL"]
    assert knobs.force_allowed.is_empty


@pytest.mark.parametrize(
    ("deploys", "problem"),
    [
        ({"poll_s": 5}, "deploys.poll_s: unknown key"),
        (
            {"poll_interval_s": 0},
            "deploys.poll_interval_s: Input should be greater than or equal to 1",
        ),
        ({"blocking_severities": ["SEVERE"]}, "deploys.blocking_severities[0]: Input should be"),
        (
            {"force_allowed": {"users": ["alice"]}},
            "deploys.force_allowed.users[0]: String should match",
        ),
    ],
)
def test_mistakes_name_their_key(deploys: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(deploy_config(deploys=deploys))
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_check_config_counts_apps_and_notes_what_cannot_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = deploy_config()
    config["apps"]["api"]["environments"]["prod"].pop("release_channel")
    config["apps"]["api"]["environments"]["staging"]["deployers"] = {}
    path = tmp_path / "opsbot.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}: valid (2 alarm routes, 1 apps with 2 environments)"
    assert (
        "note: apps.api.environments.prod needs confirmations but has no release_channel"
        in (out[1])
    )
    assert out[2] == "note: apps.api.environments.staging has no deployers: nobody may deploy it"
