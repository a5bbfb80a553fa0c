"""The YAML configuration file (OPSBOT_CONFIG): its schema and its loader.

Every error names the key that is wrong and why, e.g.
``alarm_routes[1].severity: Input should be 'critical', 'error', 'warning' or 'info'``.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable
from datetime import datetime, time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.commands import Naming, Style

Severity = Literal["critical", "error", "warning", "info"]

# Channel ids (C/G/D + upper-case alphanumerics) or public channel names.
CHANNEL = re.compile(r"^([CGD][A-Z0-9]{6,}|#?[a-z0-9][a-z0-9._-]{0,79})$")
ENV_VAR = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# What Slack notifies in a message's text: a user, a user group, or a special mention,
# each with an optional `|label` as Slack's own clients write them (a label may hold
# spaces: `<@U0123|Alice Smith>`); several are separated by whitespace.
MENTIONS = re.compile(
    r"^\s*(?:<(?:@[UW][A-Z0-9]+|!subteam\^S[A-Z0-9]+|!here|!channel|!everyone)"
    r"(?:\|[^<>|]*)?>\s*)+$"
)


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


USER_ID = r"^[UW][A-Z0-9]+$"
GROUP_ID = r"^S[A-Z0-9]+$"


class People(Strict):
    """Slack user ids (U...) and user group ids (S...)."""

    users: list[Annotated[str, Field(pattern=USER_ID)]] = Field(default_factory=list)
    groups: list[Annotated[str, Field(pattern=GROUP_ID)]] = Field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.users and not self.groups


class Who(Strict):
    """A set of people: listed users and groups, the incident channel's members, or everyone.

    `everyone` means every full member of the workspace; guests are in a set only
    where the rights section says `guests: true` (or they are listed by id).
    """

    users: list[Annotated[str, Field(pattern=USER_ID)]] = Field(default_factory=list)
    groups: list[Annotated[str, Field(pattern=GROUP_ID)]] = Field(default_factory=list)
    channel_members: bool = False
    everyone: bool = False

    @property
    def is_empty(self) -> bool:
        return not (self.users or self.groups or self.channel_members or self.everyone)


class SilenceWho(Who):
    """Who may silence an alarm's incident, and for how long at most."""

    max_min: int = Field(default=1440, ge=1, le=10_080)


def _channel_members() -> Who:
    return Who(channel_members=True)


def _everyone() -> Who:
    return Who(everyone=True)


def _channel_silencers() -> SilenceWho:
    return SilenceWho(channel_members=True)


class RouteRights(Strict):
    """A route's own rights: each key given replaces that whole entry of `rights.incidents`."""

    respond: Who | None = None  # acknowledge, resolve, escalate, add notes
    declare: Who | None = None  # declare an incident that pages through this route
    silence: SilenceWho | None = None
    guests: bool | None = None  # guests hold the rights above on this route


class IncidentRights(Strict):
    """The rights every route has unless it says otherwise."""

    respond: Who = Field(default_factory=_channel_members)
    declare: Who = Field(default_factory=_everyone)
    silence: SilenceWho = Field(default_factory=_channel_silencers)
    guests: bool = False

    def for_route(self, route: RouteRights | None) -> IncidentRights:
        """These rights with a route's own keys on top."""
        if route is None:
            return self
        own = {k: v for k in RouteRights.model_fields if (v := getattr(route, k)) is not None}
        return self.model_copy(update=own)


# `github:<login>`, `github:<login>#<account id>` or `os:<user>`.
CLI_IDENTITY = (
    r"^(github:[A-Za-z0-9][A-Za-z0-9._-]{0,99}(#[1-9][0-9]{0,19})?"
    r"|os:[A-Za-z0-9][A-Za-z0-9._-]{0,99})$"
)
GITHUB_OIDC_ISSUER = "https://token.actions.githubusercontent.com"
# `owner/name`, or `owner/name#<repository id>` to pin the repository itself.
GITHUB_REPOSITORY = r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}(#[1-9][0-9]{0,19})?$"


def _pinned_and_not(names: Iterable[str]) -> list[list[str]]:
    """The GitHub names (`<name>#<id>` or `<name>`) given with different ids, or with an id
    and without one: each group sorted. Names compare as GitHub compares them, ignoring
    case; the same name without an id in two cases is one name, not a conflict."""
    by_name: dict[str, set[str]] = {}
    for name in names:
        by_name.setdefault(name.partition("#")[0].casefold(), set()).add(name)
    return [
        sorted(same)
        for same in by_name.values()
        if len({name.partition("#")[2] for name in same}) > 1
    ]


class CliGithub(Strict):
    """Which GitHub OIDC tokens name a `github:<actor>` CLI identity.

    The issuer sits here, in the operators' file, not in the environment: whoever
    runs the CLI sets its environment, and an issuer of their own signs anything.
    """

    # The repositories (`owner/name#<id>` or `owner/name`) whose workflows' tokens are
    # accepted; none: no token is. With the id (the token's `repository_id`), an entry
    # names one repository; without it, whichever holds the name, which renaming or
    # deleting the repository or its owner frees for anyone to register.
    repositories: list[Annotated[str, Field(pattern=GITHUB_REPOSITORY)]] = Field(
        default_factory=list
    )
    # The GitHub environments (`environment` claim) a job must run in; none: any job of
    # the repositories. Naming the protected environments binds the CLI to reviewed jobs.
    environments: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list
    )
    issuer: str = Field(default=GITHUB_OIDC_ISSUER, pattern=r"^https://")
    audience: str = Field(default="opsbot", min_length=1)

    @field_validator("repositories")
    @classmethod
    def _one_entry_per_repository(cls, repositories: list[str]) -> list[str]:
        # An entry without an id beside one with it would accept whichever repository holds
        # the name: the id would guard nothing. (Names compared as GitHub does, ignoring
        # case; entries without an id differing only in case stay allowed.)
        twice = _pinned_and_not(repositories)
        if twice:
            raise ValueError(
                "a GitHub repository may be listed once: "
                + "; ".join(", ".join(same) for same in sorted(twice))
                + " (keep the one with the repository id, `owner/name#<id>`)"
            )
        return repositories


class Rights(Strict):
    """Who may do what with incidents, who administers opsbot, and who the CLI acts as."""

    # Link a PagerDuty identity for someone else, retry abandoned deliveries.
    admins: People = Field(default_factory=People)
    incidents: IncidentRights = Field(default_factory=IncidentRights)
    # `github:<login>#<account id>` or `github:<login>` (GitHub Actions) or `os:<user>`
    # (a terminal) -> Slack user id. With the id, a key names one GitHub account; without
    # it, whoever holds the login, which a rename or a deletion frees for anyone.
    cli: dict[
        Annotated[str, Field(pattern=CLI_IDENTITY)], Annotated[str, Field(pattern=USER_ID)]
    ] = Field(default_factory=dict)
    cli_github: CliGithub = Field(default_factory=lambda: CliGithub())

    @field_validator("cli")
    @classmethod
    def _one_key_per_github_login(cls, cli: dict[str, str]) -> dict[str, str]:
        # A key without an id next to one with it would let whoever holds the login in,
        # whatever their id: the id would guard nothing. (Logins are compared as GitHub
        # does, ignoring case; keys without an id differing only in case stay allowed.)
        twice = _pinned_and_not(key for key in cli if key.startswith("github:"))
        if twice:
            raise ValueError(
                "a GitHub login may have one key only: "
                + "; ".join(", ".join(same) for same in sorted(twice))
                + " (keep the one with the account id, `github:<login>#<id>`)"
            )
        return cli


class AlarmRoute(Strict):
    name: str | None = None
    match: AlarmMatch = Field(default_factory=AlarmMatch)
    channel: str
    pagerduty_routing_key_env: str | None = None
    severity: Severity = "error"
    mention: str | None = None
    # An incident still unacknowledged this long after its page gets a threaded
    # reminder that mentions the on-call; after `escalate_after_min` the bot
    # escalates it in PagerDuty. Unset: neither.
    remind_after_min: float | None = Field(default=None, gt=0, le=10_080)
    escalate_after_min: float | None = Field(default=None, gt=0, le=10_080)
    rights: RouteRights | None = None
    # `/incident declare` on this route also starts the incident's own channel
    # (None: as `incident_channels.create_on_declare` says).
    create_incident_channel: bool | None = None

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        if not CHANNEL.match(value):
            raise ValueError("must be a Slack channel id (C0123ABCD) or a channel name (#alerts)")
        return value

    @model_validator(mode="after")
    def _reminder_before_escalation(self) -> AlarmRoute:
        remind, escalate = self.remind_after_min, self.escalate_after_min
        if remind is not None and escalate is not None and escalate <= remind:
            raise ValueError("escalate_after_min must be later than remind_after_min")
        if (remind is not None or escalate is not None) and not self.pagerduty_routing_key_env:
            raise ValueError(
                "remind_after_min and escalate_after_min need pagerduty_routing_key_env "
                "(only paged incidents are reminded and escalated)"
            )
        return self

    @field_validator("mention")
    @classmethod
    def _mention(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Slack notifies only its escaped forms: "@prod-oncall" as written in the
        # message box reaches nobody, and on a route that pages no one it was the alarm.
        if value is None or MENTIONS.match(value):
            return value
        route = f" (route {info.data['name']})" if info.data.get("name") else ""
        raise ValueError(
            f"{value!r} is not a Slack mention{route}: write it as <!subteam^S0123> "
            "(a user group id), <@U0123> (a user id), <!here> or <!channel>, "
            "several separated by spaces"
        )

    @field_validator("pagerduty_routing_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_VAR.match(value):
            raise ValueError("must be the name of an environment variable, e.g. PD_KEY_PROD")
        return value

    @property
    def label(self) -> str:
        return self.name or self.channel


# The route name of incidents opened in PagerDuty by others (bot/incidents/pagerduty_sync.py):
# they came through no route, so `rights.incidents` (or a route of that name) applies.
PAGERDUTY_ROUTE = "pagerduty"


class RouteGone(LookupError):
    """An incident's route is no longer in the config (renamed or removed): no rights known."""


class AlarmSettings(Strict):
    # A re-ALARM this soon after OK reopens the same incident; the PagerDuty
    # resolve waits this long too, so a flap does not page twice.
    reopen_window_s: int = Field(default=300, ge=0, le=86_400)
    # Where messages that are not CloudWatch alarms go (default: the last route's channel).
    notices_channel: str | None = None
    # SQS long-poll wait; lower only to make shutdown quicker in tests.
    queue_wait_s: int = Field(default=20, ge=0, le=20)
    # How far back an incident's message lists the changes opsbot made to the
    # app environment its alarm belongs to (deploys, rollbacks, flag changes).
    changes_window_min: float = Field(default=120.0, gt=0, le=10_080)
    # Transitions of one incident within this many seconds of the first go into one
    # thread reply, sent when the window ends (0: each goes as soon as it can, still
    # folding those that pile up unsent). The incident's message shows each at once.
    fold_window_s: float = Field(default=30.0, ge=0, le=3_600)
    # More than this many alarms opening on one route within group_window_s are
    # listed in one parent message, each alarm's own message in its thread (0: never).
    group_above: int = Field(default=5, ge=0, le=1_000)
    group_window_s: float = Field(default=60.0, gt=0, le=86_400)


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def _channel_or_raise(value: str) -> str:
    if not CHANNEL.match(value):
        raise ValueError("must be a Slack channel id (C0123ABCD) or a channel name (#oncall)")
    return value


class OnCallTeam(Strict):
    """What `/oncall <team>` and a handoff look up in PagerDuty (ids, e.g. PABC123)."""

    escalation_policies: list[Annotated[str, Field(pattern=r"^P[A-Z0-9]+$")]] = Field(
        default_factory=list
    )
    schedules: list[Annotated[str, Field(pattern=r"^P[A-Z0-9]+$")]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> OnCallTeam:
        if not self.escalation_policies and not self.schedules:
            raise ValueError("name at least one of escalation_policies or schedules")
        return self


class Handoff(Strict):
    """A daily post of who is on call for the next shift."""

    channel: str
    at: str  # HH:MM in `timezone`
    timezone: str = "UTC"
    team: str

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        return _channel_or_raise(value)

    @field_validator("at")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not HHMM.match(value):
            raise ValueError("must be a time of day as HH:MM, e.g. 09:00")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone, e.g. Europe/Berlin or UTC") from None
        return value

    @property
    def time_of_day(self) -> time:
        hours, minutes = self.at.split(":")
        return time(int(hours), int(minutes))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class HomeSettings(Strict):
    """App Home: who gets a refreshed view, how often (views.publish is Slack's Tier 4)."""

    # How often the leader looks for changes Home shows; 0: only when someone opens Home.
    refresh_interval_s: float = Field(default=5.0, ge=0, le=300)
    # Whose Home is refreshed: people who opened it this recently.
    recent_h: float = Field(default=12.0, gt=0, le=168)
    # A person's Home is refreshed at most once per this many seconds (changes coalesce).
    debounce_s: float = Field(default=30.0, ge=0, le=3600)
    # Refreshes per minute for the whole workspace, leaving room under Tier 4 (~100/min)
    # for the publishes of people opening Home.
    max_refreshes_per_min: int = Field(default=50, ge=1, le=90)


INCIDENT_CHANNEL_FIELDS = frozenset({"number", "slug", "route", "severity"})


class IncidentChannelSettings(Strict):
    """A Slack channel per incident (bot/incidents/channels.py)."""

    # The channel's name: {number} (opsbot's incident number, required: it makes the
    # name unique), {slug} (the title), {route}, {severity}; made to Slack's rules.
    name_pattern: str = "inc-{number}-{slug}"
    # Whether `/incident declare` starts one by itself (a route may say otherwise);
    # the Start a channel button is on every open incident either way.
    create_on_declare: bool = False
    # Archive the channel this many days after the incident is resolved (unset: never).
    archive_after_days: float | None = Field(default=None, gt=0, le=365)
    # Who is on call in this `oncall.teams` entry is invited (unset: oncall.default_team;
    # neither: only the responders).
    oncall_team: str | None = None

    @field_validator("name_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        except ValueError as exc:
            raise ValueError(f"is not a valid pattern ({exc})") from None
        unknown = names - INCIDENT_CHANNEL_FIELDS
        if unknown:
            known = ", ".join("{" + f + "}" for f in sorted(INCIDENT_CHANNEL_FIELDS))
            raise ValueError(f"knows only {known}, not {{{sorted(unknown)[0]}}}")
        if "number" not in names:
            raise ValueError("must contain {number}, which keeps names unique")
        literal = value
        for name in names:
            literal = literal.replace("{" + name + "}", "")
        if not re.fullmatch(r"[a-z0-9_-]*", literal):
            raise ValueError("may hold only a-z, 0-9, - and _ besides its {fields}")
        return value


class OnCallSettings(Strict):
    """On-call in Slack: acting on pages, /oncall, /incident, handoffs."""

    # The PagerDuty user the bot acts as when it escalates by itself (the `From`
    # header of REST calls that no person made).
    pagerduty_from: str | None = None
    # Where incidents opened in PagerDuty by something other than our alarms are posted.
    pagerduty_channel: str | None = None
    # The route `/incident declare` pages through when no --route is given
    # (default: the first route with a routing key).
    declare_route: str | None = None
    # What a bare `/oncall` shows (default: every escalation policy).
    default_team: str | None = None
    teams: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")], OnCallTeam] = Field(
        default_factory=dict
    )
    handoffs: list[Handoff] = Field(default_factory=list)
    # How long an email lookup (Slack user -> PagerDuty user) is trusted.
    people_cache_h: float = Field(default=24.0, gt=0, le=720)
    # How far ahead `/oncall` looks for who is next.
    lookahead_h: float = Field(default=168.0, gt=0, le=2160)

    @field_validator("pagerduty_from")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL.match(value):
            raise ValueError("must be the email of a PagerDuty user, e.g. opsbot@example.com")
        return value

    @field_validator("pagerduty_channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        return None if value is None else _channel_or_raise(value)

    @model_validator(mode="after")
    def _teams_exist(self) -> OnCallSettings:
        if self.default_team is not None and self.default_team not in self.teams:
            raise ValueError(f"default_team: {self.default_team!r} is not one of oncall.teams")
        for n, handoff in enumerate(self.handoffs):
            if handoff.team not in self.teams:
                raise ValueError(f"handoffs[{n}].team: {handoff.team!r} is not one of oncall.teams")
        return self


class DeliverySettings(Strict):
    """How the outbox paces and retries Slack and PagerDuty calls.

    Each method is paced by its own documented limit (a token bucket: a
    sustained rate and a burst); a 429 pauses only the method it answered.
    """

    # chat.postMessage: about one message a second per channel, short bursts allowed.
    slack_per_channel_per_s: float = Field(default=1.0, gt=0)
    slack_burst: int = Field(default=4, ge=1)
    # chat.update of the bot's own messages, across the workspace: Tier 3
    # (50+ a minute, "sporadic bursts are welcome"), whatever the channel.
    slack_updates_per_min: float = Field(default=50.0, gt=0)
    slack_updates_burst: int = Field(default=50, ge=1)
    # Answers through a response_url: no tier; each URL takes 5 answers in 30 minutes.
    slack_responses_per_s: float = Field(default=50.0, gt=0)
    slack_responses_burst: int = Field(default=50, ge=1)
    # Events API v2: about 120 events a minute per routing key.
    pagerduty_per_min: float = Field(default=120.0, gt=0)
    pagerduty_burst: int = Field(default=20, ge=1)
    # REST API v2 (acknowledge, resolve, escalate, note): 960 requests a minute per token.
    pagerduty_rest_per_min: float = Field(default=960.0, gt=0)
    pagerduty_rest_burst: int = Field(default=60, ge=1)
    workers: int = Field(default=8, ge=1, le=64)
    lease_s: float = Field(default=30.0, gt=0)
    poll_interval_s: float = Field(default=1.0, gt=0)
    max_backoff_s: float = Field(default=300.0, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)
    # Work queued behind a Slack acknowledgement whose instance has not renewed
    # it for this long was lost with it: the person is told (bot/inbound/after_ack_journal.py).
    after_ack_lease_s: float = Field(default=60.0, ge=1.0, le=1800.0)

    @model_validator(mode="after")
    def _lease_outlives_requests(self) -> DeliverySettings:
        # A claim must outlive any request it covers, or a slow answer could
        # land after another worker has already sent the delivery again.
        if self.lease_s < 2 * self.request_timeout_s:
            raise ValueError("lease_s must be at least twice request_timeout_s")
        return self


NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
# The words /deploy takes first as a verb (handlers/deploys.py; `help` in /rollback and
# /releases too): an app of that name could never be deployed from Slack.
RESERVED_APP_NAMES = frozenset({"help", "status", "history", "lock", "unlock"})
ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")


class AwsSettings(Strict):
    """The AWS account and region the apps live in; opsbot changes nothing anywhere else.

    The operators' file says it, not the environment: whoever runs `opsbot deploy`
    sets its AWS_REGION and credentials, and a same-named cluster and service may
    exist in another region or account. Unset: wherever opsbot's AWS_REGION and
    credentials point.
    """

    account_id: str | None = None
    region: str | None = None

    @field_validator("account_id", mode="before")
    @classmethod
    def _account_id(cls, value: Any) -> Any:
        # YAML reads an unquoted id as a number: twelve digits are taken as written, but
        # one with a leading zero would have lost it (or been read as octal).
        if isinstance(value, int) and not isinstance(value, bool) and len(str(value)) == 12:
            value = str(value)
        if value is not None and not (isinstance(value, str) and ACCOUNT_ID.match(value)):
            raise ValueError('must be a 12-digit AWS account id in quotes, e.g. "123456789012"')
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not REGION.match(value):
            raise ValueError("must be an AWS region code, e.g. us-east-1")
        return value


def _ecs_name(value: str) -> str:
    """A cluster's or service's name, given as it or as an ARN (`...:service/<cluster>/<name>`)."""
    return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value


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
    # Alarms of this environment, by name (globs); besides them, an alarm whose
    # dimensions name its ECS service, load balancer or target group is its own.
    alarms: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(default_factory=list)
    # CloudWatch's LoadBalancer (app/<name>/<id>) and TargetGroup
    # (targetgroup/<name>/<id>) dimension values, or their ARNs.
    load_balancer: str | None = None
    target_group: str | None = None

    @property
    def ecs_service(self) -> tuple[str, str]:
        """The names of its ECS cluster and service, however they are given."""
        return _ecs_name(self.cluster), _ecs_name(self.service)

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


class SlashCommands(Strict):
    """What Slack calls opsbot's commands (bot/commands.py `Naming`): `/deploy`, `/ops deploy`
    or `/ops-deploy`; the manifest (`opsbot manifest`) follows."""

    style: Style = "separate"
    prefix: str | None = None

    @model_validator(mode="after")
    def _usable(self) -> SlashCommands:
        problems = self.naming.problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def naming(self) -> Naming:
        return Naming(style=self.style, prefix=self.prefix)


class Config(Strict):
    alarm_routes: list[AlarmRoute] = Field(min_length=1)
    alarms: AlarmSettings = Field(default_factory=AlarmSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    apps: dict[Annotated[str, Field(pattern=NAME)], App] = Field(default_factory=dict)
    oncall: OnCallSettings = Field(default_factory=OnCallSettings)
    home: HomeSettings = Field(default_factory=HomeSettings)
    incident_channels: IncidentChannelSettings = Field(default_factory=IncidentChannelSettings)
    deploys: DeploySettings = Field(default_factory=DeploySettings)
    rights: Rights = Field(default_factory=Rights)
    commands: SlashCommands = Field(default_factory=SlashCommands)
    aws: AwsSettings = Field(default_factory=AwsSettings)
    # Where opsbot tells operators about its own failures (dead deliveries, late
    # pages); Slack's refusal of the token itself pages through this routing key.
    ops_channel: str | None = None
    ops_pagerduty_routing_key_env: str | None = None
    # A page still waiting to reach PagerDuty this long after it was due is announced.
    ops_page_late_after_s: float = Field(default=120.0, ge=10.0, le=3600.0)

    @field_validator("ops_channel")
    @classmethod
    def _ops_channel(cls, value: str | None) -> str | None:
        return None if value is None else _channel_or_raise(value)

    @field_validator("ops_pagerduty_routing_key_env")
    @classmethod
    def _ops_key_env(cls, value: str | None) -> str | None:
        if value is not None and not ENV_VAR.match(value):
            raise ValueError("must be the name of an environment variable, e.g. PD_KEY_OPS")
        return value

    @field_validator("apps")
    @classmethod
    def _no_verb_names(cls, apps: dict[str, App]) -> dict[str, App]:
        reserved = sorted(RESERVED_APP_NAMES & set(apps))
        if reserved:
            raise ValueError(
                f"{reserved[0]}: is a word /deploy reads as its own "
                f"(`/deploy {reserved[0]} ...`), so this app could not be deployed from "
                "Slack: rename it"
            )
        return apps

    @model_validator(mode="after")
    def _one_environment_per_service(self) -> Config:
        # Two environments of one ECS service would each keep its own approvals, freezes,
        # locks and deploy lock: the laxer one would change the stricter one's service
        # unchecked, and two deploys could race on it.
        first: dict[tuple[str, str], str] = {}
        for app_name, app in self.apps.items():
            for env_name, env in app.environments.items():
                where = f"apps.{app_name}.environments.{env_name}"
                earlier = first.setdefault(env.ecs_service, where)
                if earlier != where:
                    cluster, service = env.ecs_service
                    raise ValueError(
                        f"apps: {earlier} and {where} both name the ECS service {service!r} "
                        f"of cluster {cluster!r}: one environment per service, or one "
                        "could change the other's service past its approvals, freezes and locks"
                    )
        return self

    @model_validator(mode="after")
    def _default_route_last(self) -> Config:
        if not self.alarm_routes[-1].match.is_catch_all:
            raise ValueError(
                "alarm_routes: the last rule must match everything (match: {}), "
                "so that no alarm is ever dropped"
            )
        return self

    @model_validator(mode="after")
    def _shared_labels_share_rights(self) -> Config:
        # An incident keeps its route's label (its name, else its channel), and its
        # rights are found by it: routes known by one label must agree on them, or
        # every incident of theirs would take the first one's.
        first_of: dict[str, int] = {}
        for index, route in enumerate(self.alarm_routes):
            first = first_of.setdefault(route.label, index)
            earlier = self.alarm_routes[first]
            if (route.rights, route.create_incident_channel) != (
                earlier.rights,
                earlier.create_incident_channel,
            ):
                raise ValueError(
                    f"alarm_routes[{first}] and alarm_routes[{index}] are both known as "
                    f"{route.label!r} (a route without a name is known by its channel) "
                    "but differ in rights or create_incident_channel: give them distinct "
                    "names, since an incident finds its route's rights by it"
                )
        return self

    @model_validator(mode="after")
    def _oncall_consistent(self) -> Config:
        escalating = [r.label for r in self.alarm_routes if r.escalate_after_min is not None]
        if escalating and self.oncall.pagerduty_from is None:
            raise ValueError(
                "oncall.pagerduty_from: needed because routes escalate by themselves "
                f"({', '.join(escalating)}): the email of the PagerDuty user the bot acts as"
            )
        name = self.oncall.declare_route
        if name is not None:
            route = self.route_named(name)
            if route is None:
                raise ValueError(f"oncall.declare_route: no alarm route is named {name!r}")
            if route.pagerduty_routing_key_env is None:
                raise ValueError(
                    f"oncall.declare_route: route {name!r} has no pagerduty_routing_key_env"
                )
        team = self.incident_channels.oncall_team
        if team is not None and team not in self.oncall.teams:
            raise ValueError(f"incident_channels.oncall_team: {team!r} is not one of oncall.teams")
        return self

    def creates_incident_channel(self, route_name: str) -> bool:
        """Whether `/incident declare` on the route named `route_name` starts a channel."""
        route = self.route_named(route_name)
        if route is not None and route.create_incident_channel is not None:
            return route.create_incident_channel
        return self.incident_channels.create_on_declare

    def incident_oncall_team(self) -> str | None:
        """The team whose on-call an incident's channel invites."""
        return self.incident_channels.oncall_team or self.oncall.default_team

    def route_named(self, name: str) -> AlarmRoute | None:
        """The first route whose `name` (or, unnamed, channel) is `name`."""
        return next((r for r in self.alarm_routes if r.label == name), None)

    def route_gone(self, route_name: str | None) -> bool:
        """Whether incidents of `route_name` came through a route the config no longer has.

        Incidents of no route (None, or opened in PagerDuty by others) have no
        route to lose.
        """
        if route_name is None or route_name == PAGERDUTY_ROUTE:
            return False
        return self.route_named(route_name) is None

    def incident_rights(self, route_name: str | None) -> IncidentRights:
        """The rights on incidents of the route named `route_name`, `rights.incidents` for
        incidents of no route; RouteGone once the config has no such route."""
        if self.route_gone(route_name):
            # Its rights went with it: the defaults may grant what the route did not.
            raise RouteGone(f"no alarm route is named {route_name!r}")
        route = self.route_named(route_name) if route_name else None
        return self.rights.incidents.for_route(route.rights if route else None)

    def routing_key_envs(self) -> set[str]:
        return {
            r.pagerduty_routing_key_env for r in self.alarm_routes if r.pagerduty_routing_key_env
        }

    def paging_key_envs(self) -> set[str]:
        """Every routing key variable opsbot may page through: the routes' and the ops key."""
        ops = {self.ops_pagerduty_routing_key_env} if self.ops_pagerduty_routing_key_env else set()
        return self.routing_key_envs() | ops


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
        path = _key_path(item["loc"])
        if item["loc"] and re.match(r"^[a-z_\[\]0-9.]+: ", message):
            # A section's own check that names the key inside it.
            path = f"{path}.{message.split(': ', 1)[0]}"
            message = message.split(": ", 1)[1]
        elif not item["loc"] and re.match(r"^[a-z_\[\]0-9.]+: ", message):
            path, message = message.split(": ", 1)
        problems.append(f"{path}: {message}")
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


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A mapping key written twice, at any depth."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.safe_load`'s loader, refusing a key written twice in one mapping.

    PyYAML keeps the last copy without a word: a second `rights:` or `alarm_routes:`
    pasted at the end of the file would drop the first, its routes and rights with it.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults`: keys written beside it win, as YAML means
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first_line.get(key)
            except TypeError:
                continue  # an unhashable key: the base class refuses it
            line = key_node.start_mark.line + 1
            if seen is not None:
                raise _DuplicateKey(
                    problem=f"key {key!r} appears twice (first on line {seen}): "
                    "the last copy would silently replace the first",
                    problem_mark=key_node.start_mark,
                )
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def load_config_text(text: str, *, source: str) -> Config:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  # a SafeLoader
    except _DuplicateKey as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise ConfigError(source, [f"line {line}: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"{where}not valid YAML ({problem})"]) from None
    return parse_config(data, source=source)


def _default_text() -> str:
    return resources.files("bot").joinpath("default_config.yaml").read_text(encoding="utf-8")


def config_digest(path: Path | None) -> str:
    """`sha256:` and 12 hex digits of the file at `path` (or of the embedded default)."""
    data = path.read_bytes() if path is not None else _default_text().encode("utf-8")
    return "sha256:" + hashlib.sha256(data).hexdigest()[:12]


def load_config(path: Path | None) -> Config:
    """The file at `path`, or the embedded default configuration when no path is given."""
    if path is None:
        return load_config_text(_default_text(), source="embedded default configuration")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"(file): cannot be read ({exc.strerror})"]) from None
    return load_config_text(text, source=str(path))
