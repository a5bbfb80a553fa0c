"""AWS AppConfig calls of the flags domain: hosted versions and deployments of one profile.

A change is a new hosted configuration version of the feature-flag profile
(written with LatestVersionNumber: AppConfig refuses it if another version
was written since the one we read) and a deployment of it to the
environment with the configured strategy; tasks running the AppConfig agent
pick it up without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.adapters.aws import AWS_ERRORS, describe_error, error_code
from bot.config import AppConfigFlags
from bot.flags.document import FlagDocument
from bot.flags.errors import FlagConflict, FlagFailed, FlagRefused, aws_call
from bot.slack_text import code, escape

# Deployment states: in progress, and how one ends (REVERTED: rolled back after COMPLETE).
RUNNING = ("DEPLOYING", "BAKING", "VALIDATING", "ROLLING_BACK")
COMPLETE = "COMPLETE"
ROLLED_BACK = ("ROLLED_BACK", "REVERTED")
DESCRIPTION_MAX = 1024


@dataclass(frozen=True)
class Version:
    """A hosted configuration version: its number, who wrote it (description), its flags."""

    number: int
    description: str | None
    document: FlagDocument


@dataclass(frozen=True)
class Rollout:
    """An AppConfig deployment as GetDeployment says it is now."""

    number: int
    state: str
    percent: float
    version: str
    strategy: str
    events: tuple[str, ...]  # newest first: "ROLLBACK_STARTED by CLOUDWATCH_ALARM: ..."

    @property
    def running(self) -> bool:
        return self.state in RUNNING

    @property
    def rolled_back(self) -> bool:
        return self.state in ROLLED_BACK


def _ids(flags: AppConfigFlags) -> dict[str, str]:
    return {"ApplicationId": flags.application, "ConfigurationProfileId": flags.profile}


FEATURE_FLAGS = "AWS.AppConfig.FeatureFlags"


def latest_version(client: Any, flags: AppConfigFlags) -> Version:
    """The newest hosted version of the profile and its document."""
    with aws_call("read the configuration profile"):
        profile = client.get_configuration_profile(**_ids(flags))
    if profile.get("Type") != FEATURE_FLAGS:
        raise FlagRefused(
            f"The configuration profile {code(flags.profile)} is of type "
            f"{code(profile.get('Type') or 'freeform')}, not `{FEATURE_FLAGS}`: "
            "check `flags.profile`."
        )
    with aws_call("list the hosted configuration versions"):
        items = client.list_hosted_configuration_versions(**_ids(flags), MaxResults=50)["Items"]
    if not items:
        raise FlagRefused("The feature-flag profile has no hosted version yet: create one in AWS.")
    newest = max(items, key=lambda item: int(item["VersionNumber"]))
    number = int(newest["VersionNumber"])
    with aws_call(f"read hosted configuration version {number}"):
        answer = client.get_hosted_configuration_version(**_ids(flags), VersionNumber=number)
        content = answer["Content"].read()
    return Version(
        number=number, description=answer.get("Description"), document=FlagDocument.parse(content)
    )


def write_version(
    client: Any, flags: AppConfigFlags, *, document: FlagDocument, latest: int, description: str
) -> int:
    """Write a new hosted version on top of `latest`; FlagConflict if another came first."""
    try:
        answer = client.create_hosted_configuration_version(
            **_ids(flags),
            Content=document.to_bytes(),
            ContentType="application/json",
            Description=description[:DESCRIPTION_MAX],
            LatestVersionNumber=latest,
        )
    except AWS_ERRORS as exc:
        if error_code(exc) == "ConflictException":
            raise FlagConflict(
                f"Someone wrote a new version of the flags after version {latest}, which this "
                "change was made from: nothing was written. Look again with `/flag list`."
            ) from exc
        raise FlagFailed(
            "AWS refused to write a new hosted configuration version: "
            f"{escape(describe_error(exc))}"
        ) from exc
    return int(answer["VersionNumber"])


def running_rollout(client: Any, flags: AppConfigFlags) -> Rollout | None:
    """The environment's deployment in progress, if any (AppConfig allows one at a time)."""
    with aws_call("list the environment's deployments"):
        items = client.list_deployments(
            ApplicationId=flags.application, EnvironmentId=flags.environment, MaxResults=10
        )["Items"]
    for item in items:
        if item.get("State") in RUNNING:
            return get_rollout(client, flags, number=int(item["DeploymentNumber"]))
    return None


def start_rollout(client: Any, flags: AppConfigFlags, *, version: int, description: str) -> int:
    with aws_call("start the AppConfig deployment"):
        answer = client.start_deployment(
            ApplicationId=flags.application,
            EnvironmentId=flags.environment,
            DeploymentStrategyId=flags.strategy,
            ConfigurationProfileId=flags.profile,
            ConfigurationVersion=str(version),
            Description=description[:DESCRIPTION_MAX],
        )
    return int(answer["DeploymentNumber"])


def get_rollout(client: Any, flags: AppConfigFlags, *, number: int) -> Rollout:
    with aws_call(f"read AppConfig deployment {number}"):
        answer = client.get_deployment(
            ApplicationId=flags.application,
            EnvironmentId=flags.environment,
            DeploymentNumber=number,
        )
    events = tuple(
        f"{e.get('EventType')} by {e.get('TriggeredBy')}: {e.get('Description') or ''}".strip()
        for e in answer.get("EventLog") or []
    )
    return Rollout(
        number=number,
        state=str(answer.get("State") or "?"),
        percent=float(answer.get("PercentageComplete") or 0.0),
        version=str(answer.get("ConfigurationVersion") or ""),
        strategy=str(answer.get("DeploymentStrategyId") or ""),
        events=events,
    )
