"""The YAML configuration file (OPSBOT_CONFIG): its schema and its loader.

Every error names the key that is wrong and why, e.g.
``alarm_routes[1].severity: Input should be 'critical', 'error', 'warning' or 'info'``.
"""

from __future__ import annotations

import re
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Severity = Literal["critical", "error", "warning", "info"]

# Channel ids (C/G/D + upper-case alphanumerics) or public channel names.
CHANNEL = re.compile(r"^([CGD][A-Z0-9]{6,}|#?[a-z0-9][a-z0-9._-]{0,79})$")
ENV_VAR = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlarmMatch(Strict):
    """Globs an alarm must match; a missing key matches anything."""

    alarm_name: str | None = None
    account: str | None = None
    region: str | None = None

    @property
    def is_catch_all(self) -> bool:
        return self.alarm_name is None and self.account is None and self.region is None


class AlarmRoute(Strict):
    name: str | None = None
    match: AlarmMatch = Field(default_factory=AlarmMatch)
    channel: str
    pagerduty_routing_key_env: str | None = None
    severity: Severity = "error"
    mention: str | None = None

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        if not CHANNEL.match(value):
            raise ValueError("must be a Slack channel id (C0123ABCD) or a channel name (#alerts)")
        return value

    @field_validator("pagerduty_routing_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_VAR.match(value):
            raise ValueError("must be the name of an environment variable, e.g. PD_KEY_PROD")
        return value

    @property
    def label(self) -> str:
        return self.name or self.channel


class AlarmSettings(Strict):
    # A re-ALARM this soon after OK reopens the same incident; the PagerDuty
    # resolve waits this long too, so a flap does not page twice.
    reopen_window_s: int = Field(default=300, ge=0, le=86_400)
    # Where messages that are not CloudWatch alarms go (default: the last route's channel).
    notices_channel: str | None = None


class DeliverySettings(Strict):
    """How the outbox paces and retries Slack and PagerDuty calls."""

    slack_per_channel_per_s: float = Field(default=1.0, gt=0)
    slack_burst: int = Field(default=4, ge=1)
    pagerduty_per_min: float = Field(default=120.0, gt=0)
    pagerduty_burst: int = Field(default=20, ge=1)
    workers: int = Field(default=8, ge=1, le=64)
    lease_s: float = Field(default=30.0, gt=0)
    poll_interval_s: float = Field(default=1.0, gt=0)
    max_backoff_s: float = Field(default=300.0, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)


NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class People(Strict):
    """Slack user ids (U...) and user group ids (S...)."""

    users: list[Annotated[str, Field(pattern=r"^[UW][A-Z0-9]+$")]] = Field(default_factory=list)
    groups: list[Annotated[str, Field(pattern=r"^S[A-Z0-9]+$")]] = Field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.users and not self.groups


class FreezeWindow(Strict):
    """A change freeze: deploys are refused unless forced by an authorised person."""

    start: datetime
    end: datetime
    reason: str

    @model_validator(mode="after")
    def _ordered(self) -> FreezeWindow:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a time zone, e.g. 2026-12-24T00:00:00Z")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class AppConfigFlags(Strict):
    """Feature flags in an AWS AppConfig feature-flag profile."""

    backend: Literal["appconfig"]
    application: str
    environment: str
    profile: str
    strategy: str


class SsmFlags(Strict):
    """Feature flags as SSM parameters /service/<service_name>/feature-flag/<FLAG>."""

    backend: Literal["ssm"]
    service_name: str


class DbRoleSettings(Strict):
    """The environment's database role manager Lambda."""

    function: str  # name or ARN


class AppEnvironment(Strict):
    cluster: str
    service: str
    container: str
    repository: str  # ECR repository name
    protected: bool = False  # changes need a confirmation click
    require_approval: bool = False  # ... by a second, different person
    release_channel: str | None = None
    deployers: People = Field(default_factory=People)  # empty: nobody may change it
    freezes: list[FreezeWindow] = Field(default_factory=list)
    flags: Annotated[AppConfigFlags | SsmFlags, Field(discriminator="backend")] | None = None
    dbrole: DbRoleSettings | None = None

    @field_validator("release_channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is not None and not CHANNEL.match(value):
            raise ValueError("must be a Slack channel id (C0123ABCD) or a channel name (#releases)")
        return value


class App(Strict):
    description: str | None = None
    environments: dict[Annotated[str, Field(pattern=NAME)], AppEnvironment] = Field(min_length=1)


ScanSeverity = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"]


def _critical_only() -> list[ScanSeverity]:
    return ["CRITICAL"]


class DeploySettings(Strict):
    """Knobs of /deploy, /rollback and /releases (every app shares them)."""

    # Watching a rollout: how often describe_services is read, and how long
    # without any change (counts, state, failed tasks) before it is called stuck.
    poll_interval_s: float = Field(default=15.0, ge=1.0, le=600.0)
    stuck_after_min: float = Field(default=20.0, gt=0, le=24 * 60)
    # A deployment still "starting" this long after it began was interrupted
    # (the bot died between taking the lock and updating the service): it is
    # then reconciled with the service's real state.
    starting_grace_s: float = Field(default=120.0, ge=10.0, le=3600.0)
    # Manual locks (`/deploy lock`) older than this remind their holder, then
    # again every `lock_reminder_every_min`.
    lock_reminder_after_min: float = Field(default=240.0, gt=0)
    lock_reminder_every_min: float = Field(default=240.0, gt=0)
    # How long a confirmation (protected environments) waits for its clicks.
    confirm_ttl_min: float = Field(default=30.0, gt=0, le=24 * 60)
    history_size: int = Field(default=10, ge=1, le=50)  # /deploy history without n
    recent_tags: int = Field(default=10, ge=1, le=50)  # listed when a tag does not exist
    releases_count: int = Field(default=15, ge=1, le=40)  # images shown by /releases
    # ECR scan findings that refuse a deploy unless it is forced.
    blocking_severities: list[ScanSeverity] = Field(default_factory=_critical_only)
    # Refuse images with no completed scan (unless forced).
    require_scan: bool = False
    # Who may use --force; empty: anyone who may deploy to the environment.
    force_allowed: People = Field(default_factory=People)


class Config(Strict):
    alarm_routes: list[AlarmRoute] = Field(min_length=1)
    alarms: AlarmSettings = Field(default_factory=AlarmSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    apps: dict[Annotated[str, Field(pattern=NAME)], App] = Field(default_factory=dict)
    deploys: DeploySettings = Field(default_factory=DeploySettings)

    @model_validator(mode="after")
    def _default_route_last(self) -> Config:
        if not self.alarm_routes[-1].match.is_catch_all:
            raise ValueError(
                "alarm_routes: the last rule must match everything (match: {}), "
                "so that no alarm is ever dropped"
            )
        return self

    def routing_key_envs(self) -> set[str]:
        return {
            r.pagerduty_routing_key_env for r in self.alarm_routes if r.pagerduty_routing_key_env
        }


class ConfigError(Exception):
    """A configuration file that cannot be used; `problems` lists 'key: why' lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def __str__(self) -> str:
        lines = [f"invalid configuration in {self.source}:"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(f"{_key_path(item['loc'])}: {message}")
    return problems


def parse_config(data: Any, *, source: str = "<config>") -> Config:
    if data is None:
        raise ConfigError(source, ["(top level): the file is empty"])
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): must be a mapping of keys to values"])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc)) from None


def load_config_text(text: str, *, source: str) -> Config:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"{where}not valid YAML ({problem})"]) from None
    return parse_config(data, source=source)


def load_config(path: Path | None) -> Config:
    """The file at `path`, or the embedded default configuration when no path is given."""
    if path is None:
        text = resources.files("bot").joinpath("default_config.yaml").read_text(encoding="utf-8")
        return load_config_text(text, source="embedded default configuration")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"(file): cannot be read ({exc.strerror})"]) from None
    return load_config_text(text, source=str(path))
