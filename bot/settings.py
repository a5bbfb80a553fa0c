"""The process environment, read once.

This is the only module that reads environment variables. Everything else
receives a `Settings` (or values taken from it) from the composition root.
"""

from __future__ import annotations

import os
import pwd
import re
from contextvars import ContextVar
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bot.db.engine import DbTimeouts, database_password_forms

# Only SNS's own hosts may serve signing certificates or confirmation URLs: exactly
# sns.<region>.amazonaws.com(.cn), the region a region code (us-east-1, us-gov-west-1,
# cn-north-1, us-isob-east-1), and the "/" right after it, so no port and no userinfo.
SNS_REGION_PATTERN = r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}"
DEFAULT_SNS_URL_PATTERN = rf"^https://sns\.{SNS_REGION_PATTERN}\.amazonaws\.com(\.cn)?/"

ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
ACCOUNT_ID = re.compile(r"[0-9]{12}")
ANY_ACCOUNT = "*"


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def variable_names(name: str, field: FieldInfo) -> tuple[str, ...]:
    """The environment variables a setting is read from, as docs/configuration.md spells
    them, e.g. ("AWS_REGION", "AWS_DEFAULT_REGION") for `aws_region`."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    return (alias,) if isinstance(alias, str) else (name.upper(),)


# True while `Settings.given` builds settings: then only the values given are read.
_GIVEN_IN_CODE: ContextVar[bool] = ContextVar("settings_given_in_code", default=False)


class _DocumentedVariables(PydanticBaseSettingsSource):
    """The environment under each setting's documented names only, spelt exactly so.

    pydantic-settings' own source also reads a setting's field name, in any case
    (`var_dir`, `VAR_DIR`, `sns_url_pattern`): names no document lists, which a
    developer's shell or a platform (LOG_LEVEL, CONFIG_PATH) may set for something else.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        for variable in variable_names(field_name, field):
            if variable in os.environ:
                return os.environ[variable], variable, False
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, variable, _ = self.get_field_value(field, field_name)
            if value is not None:
                found[variable] = value
        return found


class Settings(BaseSettings):
    """Everything opsbot takes from its environment, under the names docs/configuration.md
    lists (`variable_names`). In code, a setting is also given by its field name."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # No .env file nor secrets directory either: opsbot names neither.
        if _GIVEN_IN_CODE.get():
            return (init_settings,)
        return init_settings, _DocumentedVariables(settings_cls)

    @classmethod
    def given(cls, **values: Any) -> Settings:
        """Settings from `values` (by field name) and defaults alone, the environment
        unread: what the sandbox runs with, whatever the developer's shell holds."""
        token = _GIVEN_IN_CODE.set(True)
        try:
            return cls(**values)
        finally:
            _GIVEN_IN_CODE.reset(token)

    database_url: str = Field(default="", validation_alias=AliasChoices("DATABASE_URL"))
    var_dir: Path = Field(default=Path("var"), validation_alias=AliasChoices("OPSBOT_VAR_DIR"))
    config_path: Path | None = Field(default=None, validation_alias=AliasChoices("OPSBOT_CONFIG"))
    host: str = Field(default="0.0.0.0", validation_alias=AliasChoices("HOST"))  # noqa: S104
    port: int = Field(default=3000, ge=0, le=65535, validation_alias=AliasChoices("PORT"))
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("OPSBOT_LOG_LEVEL"))
    public_url: str | None = Field(default=None, validation_alias=AliasChoices("OPSBOT_PUBLIC_URL"))

    slack_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN")
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SLACK_SIGNING_SECRET"),
    )
    # An app-level token (xapp-…, scope connections:write): opsbot then takes Slack's
    # commands, clicks and events over Socket Mode instead of POST /slack/events.
    slack_app_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN")
    )
    # Socket Mode: how often the websocket is pinged (a connection that answers no ping
    # for four of these is dropped and opened again), and the longest wait between two
    # attempts to open one (each failed attempt doubles the wait, from the ping interval).
    slack_socket_ping_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        validation_alias=AliasChoices("OPSBOT_SLACK_SOCKET_PING_S"),
    )
    slack_socket_backoff_max_s: float = Field(
        default=60.0,
        gt=0,
        le=600,
        validation_alias=AliasChoices("OPSBOT_SLACK_SOCKET_BACKOFF_MAX_S"),
    )
    # How long a form's submission waits for its outcome before it closes the form and the
    # outcome follows by message: Slack waits three seconds for the answer.
    slack_form_wait_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        validation_alias=AliasChoices("OPSBOT_SLACK_FORM_WAIT_S"),
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/",
        validation_alias=AliasChoices("SLACK_API_URL"),
    )

    pagerduty_api_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("PAGERDUTY_API_TOKEN"),
    )
    pagerduty_api_url: str = Field(
        default="https://api.pagerduty.com",
        validation_alias=AliasChoices("PAGERDUTY_API_URL"),
    )
    pagerduty_events_url: str = Field(
        default="https://events.pagerduty.com",
        validation_alias=AliasChoices("PAGERDUTY_EVENTS_URL"),
    )
    pagerduty_webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("PAGERDUTY_WEBHOOK_SECRETS"),
    )

    sns_topic_arns: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("OPSBOT_SNS_TOPIC_ARNS"),
    )
    sns_url_pattern: str = Field(
        default=DEFAULT_SNS_URL_PATTERN,
        validation_alias=AliasChoices("OPSBOT_SNS_CERT_URL_PATTERN"),
    )
    # How long fetching one SNS signing certificate may take. The whole /sns answer
    # must stay under SNS's 15 s delivery timeout, and a message waits at most twice this.
    sns_cert_fetch_timeout_s: float = Field(
        default=3.0,
        gt=0,
        le=5,
        validation_alias=AliasChoices("OPSBOT_SNS_CERT_FETCH_TIMEOUT_S"),
    )
    sns_allow_signature_v1: bool = Field(
        default=False,
        validation_alias=AliasChoices("OPSBOT_SNS_ALLOW_SIGNATURE_V1"),
    )
    alarm_queue_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPSBOT_ALARM_QUEUE_URL"),
    )
    # The queue's subscription strips the SNS envelope: nothing to verify, the
    # queue's access policy is the only trust boundary.
    alarm_queue_raw_delivery: bool = Field(
        default=False,
        validation_alias=AliasChoices("OPSBOT_ALARM_QUEUE_RAW_DELIVERY"),
    )
    # Which accounts' alarms a topic may carry besides its own account's: comma-separated
    # `<topic ARN>=<account>` pairs, a pair per account, `*` for every account (a topic
    # of an organisation's). Under raw delivery the queue's URL stands for its topic.
    # Declared after the topics and the queue, which its validation reads.
    sns_topic_accounts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("OPSBOT_SNS_TOPIC_ACCOUNTS"),
    )
    # Operating opsbot itself (docs/operations.md).
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        validation_alias=AliasChoices("OPSBOT_METRICS_PORT"),
    )
    metrics_host: str = Field(
        default="0.0.0.0",  # noqa: S104  # scraped from inside the VPC; the ALB never routes here
        validation_alias=AliasChoices("OPSBOT_METRICS_HOST"),
    )
    log_format: Literal["text", "json"] = Field(
        default="text", validation_alias=AliasChoices("OPSBOT_LOG_FORMAT")
    )
    emf_interval_s: float = Field(
        default=60.0, ge=0, validation_alias=AliasChoices("OPSBOT_EMF_INTERVAL_S")
    )
    emf_namespace: str = Field(
        default="opsbot",
        min_length=1,
        max_length=255,
        validation_alias=AliasChoices("OPSBOT_EMF_NAMESPACE"),
    )
    heartbeat_s: float = Field(
        default=15.0, gt=0, validation_alias=AliasChoices("OPSBOT_HEARTBEAT_S")
    )
    loop_stall_warn_s: float = Field(
        default=0.25,
        gt=0,
        validation_alias=AliasChoices("OPSBOT_LOOP_STALL_WARN_S"),
    )
    build_commit: str = Field(default="", validation_alias=AliasChoices("OPSBOT_BUILD_COMMIT"))
    config_version: str | None = Field(
        default=None, validation_alias=AliasChoices("OPSBOT_CONFIG_VERSION")
    )

    # Secrets the config file names by variable (routing keys), given in code rather
    # than by the environment: see `with_secrets`. Never read from the environment.
    _secrets: dict[str, SecretStr] = PrivateAttr(default_factory=dict)

    ssl_cert_file: Path | None = Field(default=None, validation_alias=AliasChoices("SSL_CERT_FILE"))
    aws_endpoint_url: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ENDPOINT_URL")
    )
    aws_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"),
    )

    # Bounds on what one request may cost (handlers/limits.py, handlers/server.py).
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        validation_alias=AliasChoices("OPSBOT_MAX_BODY_BYTES"),
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        validation_alias=AliasChoices("OPSBOT_HEADER_TIMEOUT_S"),
    )
    body_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        validation_alias=AliasChoices("OPSBOT_BODY_TIMEOUT_S"),
    )
    max_connections: int = Field(
        default=256,
        ge=16,
        validation_alias=AliasChoices("OPSBOT_MAX_CONNECTIONS"),
    )

    # Bounds on the database (bot/db/engine.py); PostgreSQL only, except the statement
    # timeout, which is also how long SQLite waits for a lock.
    db_connect_timeout_s: int = Field(
        default=5,
        ge=2,  # libpq's own minimum
        le=300,
        validation_alias=AliasChoices("OPSBOT_DB_CONNECT_TIMEOUT_S"),
    )
    db_statement_timeout_s: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("OPSBOT_DB_STATEMENT_TIMEOUT_S"),
    )
    db_idle_in_transaction_timeout_s: float = Field(
        default=60.0,
        gt=0,
        validation_alias=AliasChoices("OPSBOT_DB_IDLE_IN_TRANSACTION_TIMEOUT_S"),
    )

    # Who runs `opsbot deploy` in GitHub Actions: the OIDC token GitHub signed for the
    # job, verified as the config's `rights.cli_github` says. Without one, the CLI is
    # the operating-system user the process runs as.
    github_oidc_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("OPSBOT_GITHUB_OIDC_TOKEN"),
    )

    @field_validator(
        "pagerduty_webhook_secrets", "sns_topic_arns", "sns_topic_accounts", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("sns_topic_accounts")
    @classmethod
    def _topic_accounts(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # A topic opsbot refuses, or a queue whose messages name their topic, would be
        # named here for nothing: most likely a typo that leaves the real one unmapped.
        topics = set(info.data.get("sns_topic_arns") or ())
        queue = info.data.get("alarm_queue_url")
        raw = bool(queue and info.data.get("alarm_queue_raw_delivery"))
        pairs = []
        for item in value:
            topic, equals, account = (part.strip() for part in item.rpartition("="))
            if not equals or not topic:
                raise ValueError(f"{item!r} is not <topic ARN>=<account>")
            if topic == queue and not raw:
                raise ValueError(
                    f"{topic!r} is the alarm queue, whose messages name their topic: name"
                    " the topic (the queue only with OPSBOT_ALARM_QUEUE_RAW_DELIVERY=true)"
                )
            if topic not in topics and topic != queue:
                raise ValueError(f"{topic!r} is not in OPSBOT_SNS_TOPIC_ARNS")
            if account != ANY_ACCOUNT and not ACCOUNT_ID.fullmatch(account):
                raise ValueError(
                    f"{account!r} (for {topic}) is not an AWS account id (12 digits) nor *"
                )
            pairs.append(f"{topic}={account}")
        return pairs

    @field_validator(
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "pagerduty_api_token",
        "github_oidc_token",
        mode="before",
    )
    @classmethod
    def _secret_text(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        # No token, secret or JWT has whitespace at either end: one there is the newline
        # a secret store or `echo >file` added, and sent as-is it would fail every
        # signature check and every call. Stripped, as PAGERDUTY_WEBHOOK_SECRETS' are.
        value = value.strip()
        # Unset means "disabled"; set but blank is a mistake (an empty secret in the
        # task definition) that would otherwise start a service nobody can reach, or
        # one whose every PagerDuty call is refused.
        if not value and info.field_name != "github_oidc_token":
            raise ValueError("is set but empty: give its value, or unset it to disable it")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        # A bot token (xoxb-) here would be sent to apps.connections.open and refused.
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token (xapp-…), not a bot token")
        return value

    @field_validator("pagerduty_api_url", "pagerduty_events_url")
    @classmethod
    def _https(cls, value: str) -> str:
        # The `pagerduty` client refuses anything else (an emulator runs TLS with a test CA).
        if not value.startswith("https://"):
            raise ValueError("must start with https://")
        return value

    @field_validator("sns_url_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @property
    def effective_database_url(self) -> str:
        """DATABASE_URL, or the embedded default: a SQLite file under the var directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'opsbot.db').as_posix()}"

    @property
    def db_timeouts(self) -> DbTimeouts:
        return DbTimeouts(
            connect_s=self.db_connect_timeout_s,
            statement_s=self.db_statement_timeout_s,
            idle_in_transaction_s=self.db_idle_in_transaction_timeout_s,
        )

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None

    @property
    def slack_inbound_enabled(self) -> bool:
        """Slack's commands, clicks and events reach opsbot: over HTTP or Socket Mode."""
        return self.slack_bot_token is not None and (
            self.slack_signing_secret is not None or self.slack_app_token is not None
        )

    @property
    def slack_socket_mode(self) -> bool:
        return self.slack_bot_token is not None and self.slack_app_token is not None

    @property
    def pagerduty_rest_enabled(self) -> bool:
        return self.pagerduty_api_token is not None

    @property
    def topic_accounts(self) -> dict[str, frozenset[str] | None]:
        """OPSBOT_SNS_TOPIC_ACCOUNTS: each topic (or raw delivery's queue) named there, and
        the accounts whose alarms it may carry besides its own account's (None: any)."""
        named: dict[str, set[str]] = {}
        for pair in self.sns_topic_accounts:
            topic, _, account = pair.rpartition("=")
            named.setdefault(topic, set()).add(account)
        return {
            topic: None if ANY_ACCOUNT in accounts else frozenset(accounts)
            for topic, accounts in named.items()
        }

    @cached_property
    def sns_url_regex(self) -> re.Pattern[str]:
        return re.compile(self.sns_url_pattern)

    @property
    def os_identity(self) -> str:
        """`os:<user>`: the account of the process's real user id, which the kernel
        vouches for (unlike `USER` or `LOGNAME`, which the caller sets)."""
        uid = os.getuid()
        try:
            return f"os:{pwd.getpwuid(uid).pw_name}"
        except KeyError:
            return f"os:uid-{uid}"

    def with_secrets(self, secrets: dict[str, str]) -> Settings:
        """A copy that answers `env_secret(name)` from `secrets` before the environment.

        For settings built in code (`opsbot dev`, tests): a routing key the config
        file names, e.g. {"PD_KEY_SANDBOX": "..."}, without touching os.environ.
        """
        for name in secrets:
            if not ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not a variable name, e.g. PD_KEY_PROD")
        copy = self.model_copy()
        copy._secrets = {
            **self._secrets,
            **{name: SecretStr(value) for name, value in secrets.items() if value},
        }
        return copy

    def env_secret(self, name: str) -> SecretStr | None:
        """A secret the config file names by environment variable (e.g. a PagerDuty routing key).

        The config file says *which* variable holds a routing key; the value is
        still read here, so the environment is only ever read by this module.
        Secrets given with `with_secrets` win over the environment.
        """
        if not ENV_NAME.match(name):
            return None
        given = self._secrets.get(name)
        if given is not None:
            return given
        # Stripped as the settings' own secrets are: a routing key has no whitespace,
        # and one sent with a newline would have PagerDuty refuse the page.
        value = (os.environ.get(name) or "").strip()
        return SecretStr(value) if value else None

    def described(self) -> list[tuple[str, str]]:
        """(variable, value) for every setting, secrets masked: what `opsbot dev` prints."""
        masked = "******** (set)"
        rows: list[tuple[str, str]] = []
        for name, info in type(self).model_fields.items():
            variable = variable_names(name, info)[0]
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                shown = masked
            elif isinstance(value, list):
                items = [masked if isinstance(v, SecretStr) else str(v) for v in value]
                shown = ", ".join(items) or "(empty)"
            elif name == "database_url" and not value:
                shown = f"(not set: the embedded default, {self.effective_database_url})"
            elif value is None or value == "":
                shown = "(not set)"
            else:
                shown = str(value)
            rows.append((variable, shown))
        rows += [(secret, masked + ", given in code") for secret in sorted(self._secrets)]
        return rows

    def secret_values(self) -> list[str]:
        """Every configured secret, for log redaction (the database password too)."""
        candidates: list[SecretStr | None] = [
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.pagerduty_api_token,
            self.github_oidc_token,
            *self.pagerduty_webhook_secrets,
            *self._secrets.values(),
        ]
        values = [
            s.get_secret_value() for s in candidates if s is not None and s.get_secret_value()
        ]
        return values + database_password_forms(self.effective_database_url)
