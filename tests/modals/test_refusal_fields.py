"""A form's refusal for want of a right names the right the person lacks, on the field it
is about: the right to force under the Force field. One Slack could not check is said as
such, never as a missing right."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from bot.config import parse_config
from bot.deploys.models import Deployment
from bot.modals import service
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import DEPLOYERS_GROUP
from tests.flags.conftest import FlagWorld
from tests.modals.conftest import Modals, modal_config
from tests.support import LiveService

STAGING = "api/staging"
SCAN_BLOCKED = "1.0.3"  # its scan found a CRITICAL: deploying it needs a force


def _force_as_bob(modals: Modals) -> dict[str, str]:
    opened = modals.command("/deploy", user="U0BOB")
    assert opened.view is not None
    answer = modals.submit(
        opened.view,
        {service.TARGET: STAGING, service.TAG: SCAN_BLOCKED, service.FORCE: "hotfix"},
        user="U0BOB",
    )
    errors: dict[str, str] = answer["errors"]
    return errors


def _deployments(modals: Modals) -> list[Deployment]:
    with modals.live.runtime.sessions() as db:
        return list(db.scalars(sa.select(Deployment)))


@pytest.fixture
def world_of(
    aws_settings: Settings,
    clock: ManualClock,
    releases: SlackEmulator,
    flag_world: FlagWorld,
    make_service: Callable[..., LiveService],
) -> Callable[[dict[str, Any]], Modals]:
    """The modal tests' world, `deploys.force_allowed` being as given."""

    def build(force_allowed: dict[str, Any]) -> Modals:
        config = modal_config(flag_world)
        config["deploys"] = {**config["deploys"], "force_allowed": force_allowed}
        live = make_service(aws_settings, parse_config(config), clock=clock, run_jobs=False)
        return Modals(live, releases)

    return build


def test_a_deployer_who_may_not_force_is_told_so_under_the_force_field(
    world_of: Callable[[dict[str, Any]], Modals],
) -> None:
    modals = world_of({"users": ["U0ALICE"]})  # Bob deploys staging, but may not force

    errors = _force_as_bob(modals)

    assert list(errors) == [service.FORCE]
    said = errors[service.FORCE]
    assert said.startswith(
        "Missing right (the right to force deploys (deploys.force_allowed)): "
        "You may not force deploys."
    ), said
    assert "deployer" not in said
    assert _deployments(modals) == []


def test_a_force_slack_could_not_check_is_not_called_a_missing_right(
    world_of: Callable[[dict[str, Any]], Modals], releases: SlackEmulator
) -> None:
    modals = world_of({"groups": [DEPLOYERS_GROUP]})  # Bob is in it, if Slack could say
    releases.faults.fail_next(100, status=500, calls=("usergroups.users.list",))

    errors = _force_as_bob(modals)

    assert list(errors) == [service.FORCE]
    said = errors[service.FORCE]
    assert said.startswith("opsbot could not check whether you may force deploys"), said
    assert "Missing right" not in said
    assert _deployments(modals) == []
