"""Fixtures of the flag tests: the deploy tests' moto world, plus flags on both backends.

`api/prod` keeps its flags in AWS AppConfig and is protected; `api/staging`
keeps them as SSM parameters. moto stores AppConfig applications, profiles
and hosted versions but has no environments, strategies or deployments, and
ignores LatestVersionNumber: those come from the sandbox's `AppConfigGaps`,
the small emulator the issue allows, served with moto behind `AwsFrontDoor`
on one endpoint, on the test's clock (one AppConfig minute is one minute of
it). The bot reaches all of AWS only through that endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.adapters.aws import client
from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.settings import Settings
from sandbox.appconfig import AppConfigGaps
from sandbox.front_door import AwsFrontDoor
from tests.deploys.conftest import (  # noqa: F401  # fixtures shared with the deploy tests
    RELEASES,
    T0,
    clock,
    deploy_config,
    live,
    make_runtime,
    releases,
    runtime,
    world,
)
from tests.deploys.world import World

SERVICE_NAME = "api-staging"
SSM_FLAGS = {"NEW_CHECKOUT_FLOW": "true", "APPLE_PAY": "false"}

FLAGS_DOCUMENT: dict[str, Any] = {
    "version": "1",
    "flags": {
        "new_checkout_flow": {
            "name": "New checkout flow",
            "attributes": {
                "rollout_percent": {
                    "constraints": {"type": "number", "minimum": 0, "maximum": 100}
                },
                "variant": {"constraints": {"type": "string", "enum": ["a", "b"]}},
            },
        },
        "apple_pay": {"name": "Apple Pay"},
        "banner": {
            "name": "Banner",
            "attributes": {
                "message": {"constraints": {"type": "string", "maxLength": 20}},
                "code": {"constraints": {"type": "string", "pattern": "^[A-Z]{3}$"}},
                "regions": {
                    "constraints": {"type": "string[]", "elements": {"enum": ["eu", "us"]}}
                },
                "weights": {"constraints": {"type": "number[]", "elements": {"minimum": 0}}},
                "sticky": {"constraints": {"type": "boolean"}},
            },
        },
    },
    "values": {
        "new_checkout_flow": {"enabled": True, "rollout_percent": 25, "variant": "a"},
        "apple_pay": {"enabled": False},
        "banner": {"enabled": False, "message": "hello"},
    },
}


@dataclass
class FlagWorld:
    gaps: AppConfigGaps
    front_door: AwsFrontDoor
    aws: Callable[[str], Any]  # clients on the front door (moto + the AppConfig gaps)
    application: str
    environment: str
    profile: str
    strategy: str

    def ids(self) -> dict[str, str]:
        return {"ApplicationId": self.application, "ConfigurationProfileId": self.profile}

    def versions(self) -> list[int]:
        items = self.aws("appconfig").list_hosted_configuration_versions(**self.ids())["Items"]
        return sorted(int(i["VersionNumber"]) for i in items)

    def document(self, number: int | None = None) -> dict[str, Any]:
        number = number or max(self.versions())
        answer = self.aws("appconfig").get_hosted_configuration_version(
            **self.ids(), VersionNumber=number
        )
        return dict(json.loads(answer["Content"].read()))

    def write(self, document: dict[str, Any], description: str) -> int:
        answer = self.aws("appconfig").create_hosted_configuration_version(
            **self.ids(),
            Content=json.dumps(document).encode(),
            ContentType="application/json",
            Description=description,
        )
        return int(answer["VersionNumber"])

    def deployments(self) -> list[dict[str, Any]]:
        return list(
            self.aws("appconfig").list_deployments(
                ApplicationId=self.application, EnvironmentId=self.environment
            )["Items"]
        )

    def ssm_value(self, flag: str) -> str:
        name = f"/service/{SERVICE_NAME}/feature-flag/{flag}"
        return str(self.aws("ssm").get_parameter(Name=name)["Parameter"]["Value"])


@pytest.fixture
def flag_world(
    moto_server: str,
    world: World,  # noqa: F811  # moto reset and the ECS/ECR world seeded first
    clock: ManualClock,  # noqa: F811
) -> Iterator[FlagWorld]:
    gaps = AppConfigGaps(minute_s=60.0, clock=lambda: clock.now().timestamp())
    door = AwsFrontDoor(moto_url=moto_server, appconfig=gaps, functions={}).start()
    try:

        def aws(service: str) -> Any:
            return client(service, region="us-east-1", endpoint_url=door.url)

        appconfig = aws("appconfig")
        app = appconfig.create_application(Name="api")["Id"]
        env = appconfig.create_environment(ApplicationId=app, Name="prod")["Id"]
        profile = appconfig.create_configuration_profile(
            ApplicationId=app, Name="flags", LocationUri="hosted", Type="AWS.AppConfig.FeatureFlags"
        )["Id"]
        strategy = appconfig.create_deployment_strategy(
            Name="api-flags",
            DeploymentDurationInMinutes=2,
            GrowthFactor=50,
            GrowthType="LINEAR",
            FinalBakeTimeInMinutes=1,
            ReplicateTo="NONE",
        )["Id"]
        found = FlagWorld(gaps, door, aws, app, env, profile, strategy)
        found.write(FLAGS_DOCUMENT, "Terraform")
        for flag, value in SSM_FLAGS.items():
            aws("ssm").put_parameter(
                Name=f"/service/{SERVICE_NAME}/feature-flag/{flag}", Value=value, Type="String"
            )
        yield found
    finally:
        door.stop()


def flag_config(fw: FlagWorld) -> dict[str, Any]:
    config = deploy_config()
    environments = config["apps"]["api"]["environments"]
    environments["prod"] = {
        **environments["prod"],
        "require_approval": False,
        "freezes": [],
        "flags": {
            "backend": "appconfig",
            "application": fw.application,
            "environment": fw.environment,
            "profile": fw.profile,
            "strategy": fw.strategy,
        },
    }
    environments["staging"] = {
        **environments["staging"],
        "flags": {"backend": "ssm", "service_name": SERVICE_NAME},
    }
    return config


@pytest.fixture
def app_config(flag_world: FlagWorld) -> Config:
    return parse_config(flag_config(flag_world))


@pytest.fixture
def aws_settings(settings: Settings, flag_world: FlagWorld) -> Settings:
    return settings.model_copy(update={"aws_endpoint_url": flag_world.front_door.url})
