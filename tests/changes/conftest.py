"""Fixtures of the changes tests: the flag tests' world (moto ECS/ECR, AppConfig, SSM),
with `api/prod` claiming the `prod-api-*` alarms."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import Config, parse_config
from tests.flags.conftest import (  # noqa: F401  # fixtures shared with the flag tests
    FlagWorld,
    aws_settings,
    clock,
    flag_config,
    flag_world,
    live,
    make_runtime,
    releases,
    runtime,
    world,
)

CLAIMED = "prod-api-5xx"


def changes_config(fw: FlagWorld, *, protected: bool = False, **alarms: Any) -> dict[str, Any]:
    config = flag_config(fw)
    prod = config["apps"]["api"]["environments"]["prod"]
    prod.update(protected=protected, require_approval=protected, alarms=["prod-api-*"])
    config["alarms"] = {**config["alarms"], **alarms}
    return config


@pytest.fixture
def protected() -> bool:
    return False


@pytest.fixture
def app_config(flag_world: FlagWorld, protected: bool) -> Config:  # noqa: F811
    return parse_config(changes_config(flag_world, protected=protected))
