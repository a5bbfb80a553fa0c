"""Typed text has a length: a lock's reason, a `--force` reason (Slack and the CLI).

Too long is refused by the parser with the usage and the limit, before any work:
nothing is locked, deployed or audited. What an acknowledgement shows back of the
typed words is clipped.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.config import parse_config
from bot.deploys.cli import BAD_INPUT, FORCE_REASON_MAX, run_deploy
from bot.deploys.models import DeployLock, Deployment
from bot.runtime import Runtime
from handlers.deploys import LOCK_REASON_MAX
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import deploy_config
from tests.deploys.test_slack import answered, command
from tests.deploys.world import World
from tests.support import LiveService


def _count(runtime: Runtime, model: type[Deployment] | type[DeployLock] | type[AuditRecord]) -> int:
    with runtime.sessions() as db:
        return int(db.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def _settled(live: LiveService, releases: SlackEmulator) -> None:
    """Once a later command's work has run, any work queued before it has started
    (the pool behind acks is first in, first out); its answer is written before this one."""
    _, url = command(live, releases, "/deploy", "status api staging")
    answered(releases, url)


@pytest.mark.parametrize(
    ("name", "text", "limit"),
    [
        ("/deploy", "lock api staging {long}", LOCK_REASON_MAX),
        ("/deploy", "api staging 1.0.3 --force {long}", FORCE_REASON_MAX),
        ("/deploy", 'api staging 1.0.3 --force="{long}"', FORCE_REASON_MAX),
        ("/rollback", "api staging --force {long}", FORCE_REASON_MAX),
    ],
    ids=["lock", "force", "force-equals", "rollback-force"],
)
def test_a_reason_past_its_limit_is_refused_with_the_usage_and_changes_nothing(
    live: LiveService,
    releases: SlackEmulator,
    world: World,
    name: str,
    text: str,
    limit: int,
) -> None:
    before = world.service_task_definition("staging")
    long = "r" * 200 + " " + "r" * (limit - 200)  # limit + 1 characters, spaces included
    ack, url = command(live, releases, name, text.format(long=long))
    assert f"too long ({limit} characters at most)" in ack["text"], ack["text"][:300]
    assert f"*{name}* —" in ack["text"]  # the command's usage follows
    assert "r" * 100 not in ack["text"]

    _settled(live, releases)
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    assert [r for r in releases.responses if r["url"] == path] == []
    assert world.service_task_definition("staging") == before
    assert _count(live.runtime, Deployment) == 0
    assert _count(live.runtime, DeployLock) == 0
    assert _count(live.runtime, AuditRecord) == 0


def test_a_reason_at_its_limit_is_taken(
    live: LiveService, releases: SlackEmulator, world: World
) -> None:
    reason = "r" * LOCK_REASON_MAX
    _, url = command(live, releases, "/deploy", f"lock api staging {reason}")
    assert "`api/staging` is locked" in answered(releases, url)
    with live.runtime.sessions() as db:
        [held] = db.scalars(sa.select(DeployLock)).all()
    assert held.reason == reason


def test_the_acknowledgement_clips_the_words_it_shows_back(
    live: LiveService, releases: SlackEmulator, world: World
) -> None:
    tag = "t" * 5000
    ack, _ = command(live, releases, "/deploy", f"api staging {tag}")
    assert ack["text"].startswith(":hourglass_flowing_sand: Checking `ttt")
    assert ack["text"].endswith("…` for `api/staging`…")
    assert len(ack["text"]) < 200


@pytest.mark.parametrize(
    ("reason", "refusal"),
    [
        ("r" * (FORCE_REASON_MAX + 1), f"is too long ({FORCE_REASON_MAX} characters at most)"),
        ("scan is stale\x00", "holds a control character (a NUL, an escape…)"),
    ],
    ids=["too-long", "nul"],
)
def test_the_cli_refuses_a_force_reason_too_long_or_with_a_control_character_as_bad_input(
    make_runtime: Callable[..., Runtime], world: World, reason: str, refusal: str
) -> None:
    config = parse_config(deploy_config(rights={"cli": {"github:octocat": "U0ALICE"}}))
    pipeline = make_runtime(config)
    before = world.service_task_definition("staging")
    said: list[str] = []
    code = run_deploy(
        pipeline,
        app="api",
        env="staging",
        tag="1.0.3",  # has findings that only --force overrides
        identify=lambda: "github:octocat",
        force_reason=reason,
        wait=False,
        timeout_s=60,
        say=said.append,
    )
    assert (code, said) == (BAD_INPUT, [f"refused: the --force reason {refusal}"])
    assert world.service_task_definition("staging") == before
    assert _count(pipeline, Deployment) == 0
    assert _count(pipeline, AuditRecord) == 0
