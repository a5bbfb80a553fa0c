"""Fixtures of the deploy tests: the moto world, a config with apps, a runtime on a test clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.app import build_runtime
from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.runtime import Runtime
from bot.settings import Settings
from sandbox.ecs_rollouts import EcsRollouts
from sandbox.slack import SlackEmulator
from tests.conftest import TEST_CONFIG
from tests.deploys.world import World, build_world
from tests.support import LiveService

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
RELEASES = "C0RELEASES"
DEPLOYERS_GROUP = "S0DEPLOYERS"


def deploy_config(**overrides: Any) -> dict[str, Any]:
    """TEST_CONFIG with an app: staging is open, prod is protected and needs a second person."""
    common = {"service": "api", "container": "app", "repository": "api"}
    config: dict[str, Any] = {
        **TEST_CONFIG,
        "apps": {
            "api": {
                "description": "the public API",
                "environments": {
                    "staging": {
                        **common,
                        "cluster": "staging",
                        "release_channel": RELEASES,
                        "deployers": {"users": ["U0ALICE", "U0BOB"]},
                    },
                    "prod": {
                        **common,
                        "cluster": "prod",
                        "protected": True,
                        "require_approval": True,
                        "release_channel": RELEASES,
                        "deployers": {"users": ["U0ALICE"], "groups": [DEPLOYERS_GROUP]},
                        "freezes": [
                            {
                                "start": "2026-11-27T00:00:00Z",
                                "end": "2026-11-30T00:00:00Z",
                                "reason": "Black Friday",
                            }
                        ],
                    },
                },
            }
        },
        "deploys": {
            "poll_interval_s": 10,
            "stuck_after_min": 10,
            "starting_grace_s": 60,
            "lock_reminder_after_min": 120,
            "lock_reminder_every_min": 60,
            "confirm_ttl_min": 30,
            "recent_tags": 3,
        },
    }
    for key, value in overrides.items():
        config[key] = value
    return config


@pytest.fixture
def world(moto_server: str, aws: Callable[[str], Any]) -> Iterator[World]:
    rollouts = EcsRollouts(aws=aws).install()
    try:
        yield build_world(moto_server, aws, rollouts)
    finally:
        rollouts.uninstall()


@pytest.fixture
def releases(slack: SlackEmulator) -> SlackEmulator:
    slack.add_channel(RELEASES, "releases")
    slack.add_user("U0CAROL", "carol", email="carol@example.com")
    slack.add_usergroup(DEPLOYERS_GROUP, "deployers", ["U0BOB"])
    return slack


@pytest.fixture
def app_config() -> Config:
    return parse_config(deploy_config())


@pytest.fixture
def aws_settings(settings: Settings, moto_server: str) -> Settings:
    return settings.model_copy(update={"aws_endpoint_url": moto_server})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def make_runtime(
    aws_settings: Settings, app_config: Config, clock: ManualClock, releases: SlackEmulator
) -> Iterator[Callable[..., Runtime]]:
    """Runtimes on the test's database and clock; jobs run only through `run_due`."""
    started: list[Runtime] = []

    def make(config: Config | None = None) -> Runtime:
        runtime = build_runtime(aws_settings, config or app_config, clock=clock, run_jobs=False)
        runtime.start()
        started.append(runtime)
        return runtime

    yield make
    for runtime in started:
        runtime.stop()


@pytest.fixture
def runtime(make_runtime: Callable[..., Runtime], world: World) -> Runtime:
    return make_runtime()


@pytest.fixture
def live(
    aws_settings: Settings,
    app_config: Config,
    clock: ManualClock,
    releases: SlackEmulator,
    world: World,
    make_service: Callable[..., LiveService],
) -> LiveService:
    """The bot serving Slack on loopback; its scheduled jobs run through `run_due`."""
    return make_service(aws_settings, app_config, clock=clock, run_jobs=False)
