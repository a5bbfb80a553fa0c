"""The demo AppConfig feature flags of checkout/prod, and the part of AppConfig moto lacks.

moto keeps AppConfig applications, configuration profiles and hosted
configuration versions, but has no environments, deployment strategies or
deployments (nor ListApplications and ListHostedConfigurationVersions), and it
ignores CreateHostedConfigurationVersion's LatestVersionNumber. In the
sandbox, `AppConfigGaps` answers exactly those operations, on the same AWS
endpoint as moto (see front_door.py), reading applications, profiles and
versions from moto's own objects so both halves agree. A deployment moves
through DEPLOYING, BAKING and COMPLETE on the strategy's schedule, with one
sandbox second standing for one AppConfig minute (`minute_s`), and is computed
from the clock whenever it is read: no thread, nothing to drift. StopDeployment
(DELETE) ends a running deployment ROLLED_BACK, as AppConfig does; that is
also how a test plays an alarm monitor rolling one back.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.server import HttpRequest, HttpResponse
from sandbox.world import ACCOUNT, APP, REGION, Clients

PROFILE = "feature-flags"
ENVIRONMENT = "prod"
STRATEGY = "checkout-prod-flags"

# The AWS.AppConfig.FeatureFlags document the demo starts with.
FLAGS_DOCUMENT: dict[str, Any] = {
    "version": "1",
    "flags": {
        "new_checkout_flow": {
            "name": "New checkout flow",
            "description": "The one-page checkout, rolled out by percentage",
            "attributes": {
                "rollout_percent": {"constraints": {"type": "number", "minimum": 0, "maximum": 100}}
            },
        },
        "apple_pay": {"name": "Apple Pay", "description": "Offer Apple Pay at payment"},
        "maintenance_banner": {
            "name": "Maintenance banner",
            "description": "A banner above every page",
            "attributes": {
                "message": {"constraints": {"type": "string", "maxLength": 200}},
            },
        },
    },
    "values": {
        "new_checkout_flow": {"enabled": True, "rollout_percent": 25},
        "apple_pay": {"enabled": False},
        "maintenance_banner": {
            "enabled": False,
            "message": "Checkout is read-only from 22:00 to 22:30 UTC",
        },
    },
}

# AWS's predefined strategies: (id, duration min, growth factor, growth type, bake min).
PREDEFINED = (
    ("AppConfig.AllAtOnce", 0, 100.0, "LINEAR", 10),
    ("AppConfig.Linear50PercentEvery30Seconds", 1, 50.0, "LINEAR", 1),
    ("AppConfig.Canary10Percent20Minutes", 20, 10.0, "EXPONENTIAL", 10),
    ("AppConfig.Linear20PercentEvery6Minutes", 30, 20.0, "LINEAR", 30),
)

APP_PATH = re.compile(r"^/applications/([^/]+)")
ENVS_PATH = re.compile(r"^/applications/([^/]+)/environments$")
ENV_PATH = re.compile(r"^/applications/([^/]+)/environments/([^/]+)$")
DEPLOYS_PATH = re.compile(r"^/applications/([^/]+)/environments/([^/]+)/deployments$")
DEPLOY_PATH = re.compile(r"^/applications/([^/]+)/environments/([^/]+)/deployments/(\d+)$")
VERSIONS_PATH = re.compile(
    r"^/applications/([^/]+)/configurationprofiles/([^/]+)/hostedconfigurationversions$"
)
STRATEGY_PATH = re.compile(r"^/deploy(?:e)?mentstrategies/([^/]+)$")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def short_id(*parts: str) -> str:
    """An AppConfig-looking id (7 lower-case alphanumerics), stable for its parts."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:7]


@dataclass
class Strategy:
    id: str
    name: str
    duration_min: float
    growth_factor: float
    growth_type: str
    bake_min: float
    description: str = ""

    def as_api(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Name": self.name,
            "Description": self.description,
            "DeploymentDurationInMinutes": self.duration_min,
            "GrowthType": self.growth_type,
            "GrowthFactor": self.growth_factor,
            "FinalBakeTimeInMinutes": self.bake_min,
            "ReplicateTo": "NONE",
        }


@dataclass
class Environment:
    application_id: str
    id: str
    name: str
    description: str = ""
    monitors: list[dict[str, Any]] = field(default_factory=list)

    def as_api(self, state: str) -> dict[str, Any]:
        return {
            "ApplicationId": self.application_id,
            "Id": self.id,
            "Name": self.name,
            "Description": self.description,
            "State": state,
            "Monitors": self.monitors,
        }


@dataclass
class Deployment:
    application_id: str
    environment_id: str
    number: int
    strategy: Strategy
    profile_id: str
    profile_name: str
    version: str
    version_label: str | None
    description: str
    started_at: float
    stopped_at: float | None = None


class AppConfigGaps:
    """AppConfig environments, strategies and deployments over moto's applications."""

    def __init__(self, *, minute_s: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.minute_s = minute_s
        self.clock = clock
        self.lock = threading.RLock()
        self.environments: dict[tuple[str, str], Environment] = {}
        self.strategies: dict[str, Strategy] = {
            sid: Strategy(sid, sid, duration, growth, kind, bake, "Predefined by AWS")
            for sid, duration, growth, kind, bake in PREDEFINED
        }
        self.deployments: dict[tuple[str, str], list[Deployment]] = {}

    # -- moto's half ---------------------------------------------------------------

    @staticmethod
    def _backend() -> Any:
        from moto.appconfig.models import appconfig_backends

        return appconfig_backends[ACCOUNT][REGION]

    def _application(self, app_id: str) -> Any:
        return self._backend().applications.get(app_id)

    # -- HTTP ------------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpResponse | None:
        """The answer for an operation moto lacks; None: moto answers it."""
        path, method = request.path, request.method
        with self.lock:
            if path == "/applications" and method == "GET":
                apps = self._backend().applications.values()
                return _json({"Items": [a.to_json() for a in apps]})
            if path == "/deploymentstrategies":
                if method == "POST":
                    return self._create_strategy(request.json() or {})
                return _json({"Items": [s.as_api() for s in self.strategies.values()]})
            found = STRATEGY_PATH.match(path)
            if found and method == "GET":
                strategy = self.strategies.get(found.group(1))
                if strategy is None:
                    return _error(404, "ResourceNotFoundException", "Deployment strategy not found")
                return _json(strategy.as_api())
            found = VERSIONS_PATH.match(path)
            if found and method == "GET":
                return self._list_versions(found.group(1), found.group(2))
            if found and method == "POST":
                return self._check_latest(found.group(1), found.group(2), request)
            found = APP_PATH.match(path)
            if not found or "/environments" not in path:
                return None
            if self._application(found.group(1)) is None:
                return _error(404, "ResourceNotFoundException", "Application not found")
            if (found := ENVS_PATH.match(path)) is not None:
                if method == "POST":
                    return self._create_environment(found.group(1), request.json() or {})
                app_id = found.group(1)
                items = [
                    e.as_api(self._environment_state(e))
                    for e in self.environments.values()
                    if e.application_id == app_id
                ]
                return _json({"Items": items})
            if (found := ENV_PATH.match(path)) is not None and method == "GET":
                env = self.environments.get((found.group(1), found.group(2)))
                if env is None:
                    return _error(404, "ResourceNotFoundException", "Environment not found")
                return _json(env.as_api(self._environment_state(env)))
            if (found := DEPLOYS_PATH.match(path)) is not None:
                key = (found.group(1), found.group(2))
                if key not in self.environments:
                    return _error(404, "ResourceNotFoundException", "Environment not found")
                if method == "POST":
                    return self._start(key, request.json() or {})
                summaries = [self._summary(d) for d in reversed(self.deployments.get(key, []))]
                return _json({"Items": summaries})
            if (found := DEPLOY_PATH.match(path)) is not None:
                key = (found.group(1), found.group(2))
                number = int(found.group(3))
                deployment = next(
                    (d for d in self.deployments.get(key, []) if d.number == number), None
                )
                if deployment is None:
                    return _error(404, "ResourceNotFoundException", "Deployment not found")
                if method == "DELETE":
                    state = self._state(deployment)[0]
                    revert = (request.headers.get("allow-revert") or "").lower() == "true"
                    # As AWS: without AllowRevert only a DEPLOYING rollout can be stopped.
                    if state == "BAKING" and not revert:
                        return _error(
                            400,
                            "BadRequestException",
                            "A deployment in BAKING can be stopped only with AllowRevert",
                        )
                    if state in ("DEPLOYING", "BAKING"):
                        deployment.stopped_at = self.clock()
                    return _json(self._describe(deployment), 202)
                return _json(self._describe(deployment))
        return None

    # -- operations ----------------------------------------------------------------------

    def _create_strategy(self, body: dict[str, Any]) -> HttpResponse:
        name = str(body.get("Name") or "")
        if not name:
            return _error(400, "BadRequestException", "Name is required")
        strategy = Strategy(
            id=short_id("strategy", name),
            name=name,
            duration_min=float(body.get("DeploymentDurationInMinutes") or 0),
            growth_factor=float(body.get("GrowthFactor") or 100),
            growth_type=str(body.get("GrowthType") or "LINEAR"),
            bake_min=float(body.get("FinalBakeTimeInMinutes") or 0),
            description=str(body.get("Description") or ""),
        )
        self.strategies[strategy.id] = strategy
        return _json(strategy.as_api(), 201)

    def _create_environment(self, app_id: str, body: dict[str, Any]) -> HttpResponse:
        name = str(body.get("Name") or "")
        if not name:
            return _error(400, "BadRequestException", "Name is required")
        env = Environment(
            application_id=app_id,
            id=short_id("environment", app_id, name),
            name=name,
            description=str(body.get("Description") or ""),
            monitors=list(body.get("Monitors") or []),
        )
        self.environments[(app_id, env.id)] = env
        return _json(env.as_api("READY_FOR_DEPLOYMENT"), 201)

    def _list_versions(self, app_id: str, profile_id: str) -> HttpResponse:
        app = self._application(app_id)
        profile = app.config_profiles.get(profile_id) if app else None
        if profile is None:
            return _error(404, "ResourceNotFoundException", "Configuration profile not found")
        items = [
            {
                "ApplicationId": app_id,
                "ConfigurationProfileId": profile_id,
                "VersionNumber": v.version,
                "Description": v.description,
                "ContentType": v.content_type,
                "VersionLabel": v.version_label,
            }
            for v in sorted(profile.config_versions.values(), key=lambda v: -v.version)
        ]
        return _json({"Items": items})

    def _check_latest(
        self, app_id: str, profile_id: str, request: HttpRequest
    ) -> HttpResponse | None:
        """LatestVersionNumber, which moto ignores: refuse a write on top of an old version.

        AppConfig answers ConflictException when the profile's newest version is
        not the one the writer names; otherwise moto stores the version.
        """
        expected = request.headers.get("latest-version-number")
        if expected is None:
            return None
        app = self._application(app_id)
        profile = app.config_profiles.get(profile_id) if app else None
        if profile is None:
            return None  # moto answers the missing profile itself
        newest = max(profile.config_versions, default=0)
        if str(newest) != expected.strip():
            return _error(
                409,
                "ConflictException",
                f"LatestVersionNumber {expected} does not match the latest version {newest}",
            )
        return None

    def _start(self, key: tuple[str, str], body: dict[str, Any]) -> HttpResponse:
        strategy = self.strategies.get(str(body.get("DeploymentStrategyId") or ""))
        if strategy is None:
            return _error(404, "ResourceNotFoundException", "Deployment strategy not found")
        profile_id = str(body.get("ConfigurationProfileId") or "")
        app = self._application(key[0])
        profile = app.config_profiles.get(profile_id) if app else None
        if profile is None:
            return _error(404, "ResourceNotFoundException", "Configuration profile not found")
        version = str(body.get("ConfigurationVersion") or "")
        if not version.isdigit() or int(version) not in profile.config_versions:
            return _error(
                404,
                "ResourceNotFoundException",
                f"Hosted configuration version {version} not found",
            )
        running = [
            d for d in self.deployments.get(key, []) if self._state(d)[0] in ("DEPLOYING", "BAKING")
        ]
        if running:
            return _error(
                409,
                "ConflictException",
                f"Deployment {running[0].number} is in progress on this environment",
            )
        history = self.deployments.setdefault(key, [])
        deployment = Deployment(
            application_id=key[0],
            environment_id=key[1],
            number=len(history) + 1,
            strategy=strategy,
            profile_id=profile_id,
            profile_name=profile.name,
            version=version,
            version_label=profile.config_versions[int(version)].version_label,
            description=str(body.get("Description") or ""),
            started_at=self.clock(),
        )
        history.append(deployment)
        return _json(self._describe(deployment), 201)

    # -- state, computed from the clock --------------------------------------------------

    def _state(self, deployment: Deployment) -> tuple[str, float, float | None]:
        """(state, percentage complete, completed at) of a deployment now."""
        minute = self.minute_s
        strategy = deployment.strategy
        deployed_at = deployment.started_at + strategy.duration_min * minute
        done_at = deployed_at + strategy.bake_min * minute
        now = self.clock()
        if deployment.stopped_at is not None and deployment.stopped_at < done_at:
            return "ROLLED_BACK", 0.0, deployment.stopped_at
        if now >= done_at:
            return "COMPLETE", 100.0, done_at
        if now >= deployed_at:
            return "BAKING", 100.0, None
        span = max(deployed_at - deployment.started_at, 1e-9)
        fraction = (now - deployment.started_at) / span
        step = strategy.growth_factor / 100.0
        percent = min(100.0, (int(fraction / step) + 1) * step * 100.0) if step else 100.0
        return "DEPLOYING", round(percent, 1), None

    def _environment_state(self, env: Environment) -> str:
        history = self.deployments.get((env.application_id, env.id), [])
        if not history:
            return "READY_FOR_DEPLOYMENT"
        state = self._state(history[-1])[0]
        return {"DEPLOYING": "DEPLOYING", "BAKING": "DEPLOYING", "ROLLED_BACK": "ROLLED_BACK"}.get(
            state, "READY_FOR_DEPLOYMENT"
        )

    def _summary(self, deployment: Deployment) -> dict[str, Any]:
        state, percent, completed = self._state(deployment)
        summary = {
            "DeploymentNumber": deployment.number,
            "ConfigurationName": deployment.profile_name,
            "ConfigurationVersion": deployment.version,
            "DeploymentDurationInMinutes": deployment.strategy.duration_min,
            "GrowthType": deployment.strategy.growth_type,
            "GrowthFactor": deployment.strategy.growth_factor,
            "FinalBakeTimeInMinutes": deployment.strategy.bake_min,
            "State": state,
            "PercentageComplete": percent,
            "StartedAt": _iso(deployment.started_at),
        }
        if deployment.version_label:
            summary["VersionLabel"] = deployment.version_label
        if completed is not None:
            summary["CompletedAt"] = _iso(completed)
        return summary

    def _describe(self, deployment: Deployment) -> dict[str, Any]:
        state, _, completed = self._state(deployment)
        events = [
            {
                "EventType": "DEPLOYMENT_STARTED",
                "TriggeredBy": "USER",
                "Description": "Deployment started",
                "OccurredAt": _iso(deployment.started_at),
            }
        ]
        if completed is not None:
            events.insert(
                0,
                {
                    "EventType": "ROLLBACK_COMPLETED"
                    if state == "ROLLED_BACK"
                    else "DEPLOYMENT_COMPLETED",
                    "TriggeredBy": "USER" if state == "ROLLED_BACK" else "APPCONFIG",
                    "Description": "Deployment stopped"
                    if state == "ROLLED_BACK"
                    else "Deployment completed",
                    "OccurredAt": _iso(completed),
                },
            )
        return {
            **self._summary(deployment),
            "ApplicationId": deployment.application_id,
            "EnvironmentId": deployment.environment_id,
            "DeploymentStrategyId": deployment.strategy.id,
            "ConfigurationProfileId": deployment.profile_id,
            "ConfigurationLocationUri": "hosted",
            "Description": deployment.description,
            "EventLog": events,
            "AppliedExtensions": [],
        }

    # -- reading state (the console) --------------------------------------------------------

    def deployed_version(self, app_id: str, env_id: str) -> str | None:
        """The version the environment's last completed deployment holds."""
        with self.lock:
            for deployment in reversed(self.deployments.get((app_id, env_id), [])):
                if self._state(deployment)[0] == "COMPLETE":
                    return deployment.version
        return None


def _json(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse.json(data, status)


def _error(status: int, code: str, message: str) -> HttpResponse:
    return HttpResponse.json(
        {"Message": message, "message": message}, status, {"x-amzn-ErrorType": code}
    )


@dataclass(frozen=True)
class AppConfigIds:
    """What the demo config names: AppConfig ids, as Terraform's outputs give them."""

    application: str
    environment: str
    profile: str
    strategy: str


def seed(clients: Clients) -> AppConfigIds:
    """The flags application, its prod environment and profile, version 1 deployed."""
    appconfig = clients("appconfig")
    app = appconfig.create_application(Name=APP, Description=f"Feature flags of {APP}")
    env = appconfig.create_environment(
        ApplicationId=app["Id"], Name=ENVIRONMENT, Description=f"{APP} {ENVIRONMENT}"
    )
    profile = appconfig.create_configuration_profile(
        ApplicationId=app["Id"],
        Name=PROFILE,
        LocationUri="hosted",
        Type="AWS.AppConfig.FeatureFlags",
    )
    strategy = appconfig.create_deployment_strategy(
        Name=STRATEGY,
        Description=f"Linear rollout of {APP} flags, then bake",
        DeploymentDurationInMinutes=2,
        GrowthFactor=50,
        GrowthType="LINEAR",
        FinalBakeTimeInMinutes=1,
        ReplicateTo="NONE",
    )
    version = appconfig.create_hosted_configuration_version(
        ApplicationId=app["Id"],
        ConfigurationProfileId=profile["Id"],
        Content=json.dumps(FLAGS_DOCUMENT, indent=2).encode(),
        ContentType="application/json",
        Description="Flags of the sandbox's demo world",
    )
    appconfig.start_deployment(
        ApplicationId=app["Id"],
        EnvironmentId=env["Id"],
        DeploymentStrategyId="AppConfig.AllAtOnce",
        ConfigurationProfileId=profile["Id"],
        ConfigurationVersion=str(version["VersionNumber"]),
        Description="Initial flags",
    )
    return AppConfigIds(
        application=app["Id"], environment=env["Id"], profile=profile["Id"], strategy=strategy["Id"]
    )


def settle(gaps: AppConfigGaps) -> None:
    """Let the demo's first deployment be long finished."""
    with gaps.lock:
        for history in gaps.deployments.values():
            for deployment in history:
                strategy = deployment.strategy
                deployment.started_at -= (strategy.duration_min + strategy.bake_min + 1) * (
                    gaps.minute_s
                )
