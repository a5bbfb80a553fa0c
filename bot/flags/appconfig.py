"""AWS AppConfig calls of the flags domain: hosted versions and deployments of one profile.

A change is a new hosted configuration version of the feature-flag profile
(written with LatestVersionNumber: AppConfig refuses it if another version
was written since the one we read) and a deployment of it to the
environment with the configured strategy; tasks running the AppConfig agent
pick it up without a restart.

What the environment holds is its deployed version, not the newest hosted one:
a version may be written and never deployed (StartDeployment refused, or
someone staging one in the console). `read_current` reads both, so a change is
made from what is deployed and an undeployed version is never shipped unseen.
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
# A deployment whose version the environment holds (COMPLETE) or is getting; one rolling
# back, rolled back or reverted gave its place back to the one before it.
HOLDS = (COMPLETE, "DEPLOYING", "BAKING", "VALIDATING")
DESCRIPTION_MAX = 1024
DEPLOYMENT_PAGES = 20  # ListDeployments pages (50 each) looked through for the profile's


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


@dataclass(frozen=True)
class Current:
    """The profile's flags in the environment: what is deployed, and the newest hosted version.

    `deployed` is the version of the profile's newest deployment to the environment
    that is COMPLETE or under way (None: none ever was); `hosted` counts the
    hosted versions (the newest is written on top of, with LatestVersionNumber).
    """

    newest: Version
    deployed: Version | None
    deployment: int | None  # the AppConfig deployment that holds `deployed`
    hosted: int

    @property
    def undeployed(self) -> bool:
        """The newest hosted version is not the one the environment holds."""
        return self.deployed is not None and self.deployed.number != self.newest.number

    @property
    def shown(self) -> Version:
        """What to show as the flags: the deployed version, else (never deployed) the newest."""
        return self.deployed or self.newest


def _profile_or_raise(client: Any, flags: AppConfigFlags) -> dict[str, Any]:
    with aws_call("read the configuration profile"):
        profile: dict[str, Any] = client.get_configuration_profile(**_ids(flags))
    if profile.get("Type") != FEATURE_FLAGS:
        raise FlagRefused(
            f"The configuration profile {code(flags.profile)} is of type "
            f"{code(profile.get('Type') or 'freeform')}, not `{FEATURE_FLAGS}`: "
            "check `flags.profile`."
        )
    return profile


def _hosted_numbers(client: Any, flags: AppConfigFlags) -> list[int]:
    with aws_call("list the hosted configuration versions"):
        items = client.list_hosted_configuration_versions(**_ids(flags), MaxResults=50)["Items"]
    if not items:
        raise FlagRefused("The feature-flag profile has no hosted version yet: create one in AWS.")
    return sorted((int(item["VersionNumber"]) for item in items), reverse=True)


def read_version(client: Any, flags: AppConfigFlags, *, number: int) -> Version:
    """One hosted version of the profile and its document."""
    with aws_call(f"read hosted configuration version {number}"):
        answer = client.get_hosted_configuration_version(**_ids(flags), VersionNumber=number)
        content = answer["Content"].read()
    return Version(
        number=number, description=answer.get("Description"), document=FlagDocument.parse(content)
    )


def latest_version(client: Any, flags: AppConfigFlags) -> Version:
    """The newest hosted version of the profile and its document."""
    _profile_or_raise(client, flags)
    return read_version(client, flags, number=_hosted_numbers(client, flags)[0])


def deployed_version(
    client: Any, flags: AppConfigFlags, *, profile_name: str
) -> tuple[int, int] | None:
    """(deployment, version) the environment holds of the profile; None: never deployed.

    ListDeployments answers newest first and names the profile only by name: a
    candidate's GetDeployment says whether it is this profile.
    """
    token: str | None = None
    for _ in range(DEPLOYMENT_PAGES):
        with aws_call("list the environment's deployments"):
            page = client.list_deployments(
                ApplicationId=flags.application,
                EnvironmentId=flags.environment,
                MaxResults=50,
                **({"NextToken": token} if token else {}),
            )
        items = sorted(page["Items"], key=lambda i: -int(i["DeploymentNumber"]))
        for item in items:
            if item.get("State") not in HOLDS:
                continue
            if item.get("ConfigurationName") not in (None, profile_name):
                continue
            number = int(item["DeploymentNumber"])
            with aws_call(f"read AppConfig deployment {number}"):
                answer = client.get_deployment(
                    ApplicationId=flags.application,
                    EnvironmentId=flags.environment,
                    DeploymentNumber=number,
                )
            if answer.get("ConfigurationProfileId") == flags.profile:
                return number, int(answer["ConfigurationVersion"])
        token = page.get("NextToken")
        if not token:
            return None
    raise FlagRefused(
        f"The last {DEPLOYMENT_PAGES * 50} deployments of the environment hold no deployment "
        f"of the profile {code(flags.profile)}: opsbot cannot tell which version is deployed."
    )


def read_current(client: Any, flags: AppConfigFlags) -> Current:
    """The deployed version and the newest hosted one, each with its document."""
    profile = _profile_or_raise(client, flags)
    numbers = _hosted_numbers(client, flags)
    newest = read_version(client, flags, number=numbers[0])
    held = deployed_version(client, flags, profile_name=str(profile.get("Name") or ""))
    if held is None:
        return Current(newest=newest, deployed=None, deployment=None, hosted=len(numbers))
    deployment, number = held
    deployed = newest if number == newest.number else read_version(client, flags, number=number)
    return Current(newest=newest, deployed=deployed, deployment=deployment, hosted=len(numbers))


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
        if error_code(exc) == "BadRequestException":  # e.g. a value its validator refuses
            raise FlagRefused(
                "AppConfig refused the new version of the flags: "
                f"{escape(describe_error(exc))}. Nothing was written."
            ) from exc
        raise FlagFailed(
            "AWS refused to write a new hosted configuration version: "
            f"{escape(describe_error(exc))}"
        ) from exc
    return int(answer["VersionNumber"])


def own_version(
    client: Any, flags: AppConfigFlags, *, latest: int, document: FlagDocument, description: str
) -> int | None:
    """The newest hosted version if it is the one a write on top of `latest` was to make.

    After a write whose answer was lost, its retry is refused (LatestVersionNumber
    is no longer the newest): the newest version is this write's own when it came
    after `latest` with the very description (who, what, approvers) and document.
    """
    newest = latest_version(client, flags)
    ours = (
        newest.number > latest
        and newest.description == description[:DESCRIPTION_MAX]
        and newest.document.raw == document.raw
    )
    return newest.number if ours else None


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


def rollout_of_version(client: Any, flags: AppConfigFlags, *, version: int) -> int | None:
    """The environment's newest deployment of the profile's `version`; None: there is none.

    After a StartDeployment whose answer was lost: AppConfig lists a deployment
    from the moment it starts it, newest first, so one not listed was not started.
    """
    with aws_call("list the environment's deployments"):
        items = client.list_deployments(
            ApplicationId=flags.application, EnvironmentId=flags.environment, MaxResults=50
        )["Items"]
    for item in sorted(items, key=lambda i: -int(i["DeploymentNumber"])):
        if str(item.get("ConfigurationVersion")) != str(version):
            continue
        number = int(item["DeploymentNumber"])
        with aws_call(f"read AppConfig deployment {number}"):
            answer = client.get_deployment(
                ApplicationId=flags.application,
                EnvironmentId=flags.environment,
                DeploymentNumber=number,
            )
        if answer.get("ConfigurationProfileId") == flags.profile:  # versions are per profile
            return number
    return None


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
