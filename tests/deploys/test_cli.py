"""`opsbot deploy`: the Slack deploy path from a terminal or a pipeline, with exit codes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from bot.app import build_runtime
from bot.approvals import flows as approval_flows
from bot.audit.models import AuditRecord
from bot.cli import main
from bot.config import parse_config
from bot.db.engine import make_engine, make_sessionmaker
from bot.deploys.models import Deployment
from bot.settings import Settings
from tests.deploys.conftest import deploy_config
from tests.deploys.world import World
from tests.support import wait_for


@pytest.fixture
def cli_env(
    tmp_path: Path, database_url: str, moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """The environment a pipeline gives `opsbot deploy`: the database, AWS, the config."""
    config = deploy_config(deploys={"poll_interval_s": 1, "starting_grace_s": 60})
    path = tmp_path / "opsbot.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("OPSBOT_CONFIG", str(path))
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield config
    for handler in list(root.handlers):  # configure_logging replaced pytest's handlers
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def deployments(database_url: str) -> list[Deployment]:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as db:
        rows = list(db.scalars(sa.select(Deployment).order_by(Deployment.id)))
    engine.dispose()
    return rows


def audit_trail(database_url: str) -> list[tuple[str, str, str]]:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as db:
        rows = [(r.action, r.actor, r.outcome) for r in db.scalars(sa.select(AuditRecord))]
    engine.dispose()
    return rows


def test_deploy_from_the_cli_takes_the_slack_path_as_the_pipeline(
    cli_env: dict[str, Any],
    world: World,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["deploy", "api", "staging", "1.0.2"]) == 0
    out = capsys.readouterr().out
    assert "Deploy #1 of api 1.0.2 to api/staging started (api-staging:2)" in out
    assert world.service_task_definition("staging").endswith("api-staging:2")
    [row] = deployments(database_url)
    assert row.actor == "cli:octocat" and row.status == "rolling_out"

    # Locks apply to the pipeline too: a second deploy is refused while this one runs.
    assert main(["deploy", "api", "staging", "1.0.1", "--actor", "release-bot"]) == 3
    out = capsys.readouterr().out
    assert "refused: api/staging is busy: deployment #1 (api 1.0.2) by cli:octocat" in out

    assert main(["deploy", "api", "staging", "0.0.0-nope"]) == 3
    assert capsys.readouterr().out == (
        "refused: There is no image 0.0.0-nope in api. "
        "Most recent tags in api: 1.0.4, 1.0.3, 1.0.2, 1.0.1, 1.0.0.\n"
    )


def test_wait_follows_the_rollout_to_its_end(
    cli_env: dict[str, Any], world: World, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(
            main(["deploy", "api", "staging", "1.0.2", "--wait", "--timeout-min", "1"])
        )
    )
    thread.start()
    wait_for(lambda: [d for d in deployments(database_url) if d.status == "rolling_out"])
    world.rollouts.progress("staging", running=1, pending=1)
    wait_for(lambda: "1/2 running" in capsys.readouterr().out, timeout_s=10)
    world.rollouts.complete("staging")
    thread.join(30)
    assert result == [0]
    [row] = deployments(database_url)
    assert row.status == "completed"


def test_a_protected_environment_waits_for_a_deployer_in_slack(
    cli_env: dict[str, Any],
    world: World,
    database_url: str,
    settings: Settings,
    moto_server: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["deploy", "api", "prod", "1.0.2"]) == 0
    out = capsys.readouterr().out
    assert "api/prod is protected: request #1 waits for the approval of a second person" in out
    assert world.service_task_definition("prod") == world.task_definitions["prod"]

    # A deployer approves in Slack (the button's code path, without HTTP).
    runtime = build_runtime(
        settings.model_copy(update={"aws_endpoint_url": moto_server}),
        parse_config(cli_env),
        run_jobs=False,
    )
    runtime.start()
    try:
        outcome = approval_flows.click(runtime, action_id=1, user_id="U0ALICE", decision="approve")
    finally:
        runtime.stop()
    assert outcome.ran and outcome.text.startswith("Deploy #1 of `api` `1.0.2` to `api/prod`")
    assert world.service_task_definition("prod").endswith("api-prod:2")
    deployed = world.describe_task_definition(world.service_task_definition("prod"))
    assert deployed["containerDefinitions"][0]["image"] == world.image("1.0.2")
    [row] = deployments(database_url)
    assert (row.actor, row.approved_by) == ("cli:octocat", ["U0ALICE"])


def test_force_from_the_cli_is_audited_under_the_pipeline_name(
    cli_env: dict[str, Any], world: World, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deploy", "api", "staging", "1.0.3"]) == 3
    assert "CRITICAL 2 finding(s)" in capsys.readouterr().out
    assert main(["deploy", "api", "staging", "1.0.3", "--force", "accepted risk, SEC-12"]) == 0
    assert audit_trail(database_url) == [
        ("deploy.request", "cli:octocat", "refused"),
        ("deploy.start", "cli:octocat", "ok"),
        ("deploy.force", "cli:octocat", "ok"),
    ]
