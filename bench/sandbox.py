"""The world around the process under test: emulators, a test CA, throwaway databases.

Slack and PagerDuty are the project's own emulators (`sandbox/`), real
HTTP servers on loopback; PagerDuty over TLS with a test CA that the process
under test trusts through SSL_CERT_FILE, and SNS messages signed by the
sandbox signer whose certificate is served on loopback.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

from bench.procs import Service, spawn_on_free_port
from bench.request_kinds import CHANNEL_ID
from bot.db.engine import normalise_url
from sandbox.alarms import alarm_message, alarm_subject
from sandbox.databases import drop_database
from sandbox.environment import clean_environment
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.server import HttpRequest, HttpResponse
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from sandbox.sns import body as sns_body
from sandbox.tls import TestCA

SIGNING_SECRET = "bench-signing-secret-8f742231b10e"  # noqa: S105  # the sandbox's own
BOT_TOKEN = "fake-bench-token"  # noqa: S105  # the Slack emulator accepts exactly this
PD_API_TOKEN = "pd-bench-sandbox-token"  # noqa: S105
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:alarms"
DEFAULT_CHANNEL = CHANNEL_ID  # where the benchmark's Slack requests come from
REPO_ROOT = Path(__file__).resolve().parent.parent


def team(k: int) -> str:
    return f"team{k}"


def channel_id(k: int) -> str:
    return f"C0TEAM{k:04d}"


def routing_key(k: int) -> str:
    return f"R0BENCHTEAM{k:03d}".ljust(32, "0")


def routing_key_env(k: int) -> str:
    return f"PD_KEY_TEAM{k}"


class TimedSlackEmulator(SlackEmulator):
    """The Slack emulator, with the time of each incoming-webhook and response_url post
    recorded too."""

    def __init__(self, *, token: str, rate_limited: bool = False) -> None:
        # rate_limited: chat.postMessage refused (429) beyond 1 a second per channel
        # after a burst of 5, as Slack does.
        super().__init__(
            token=token, enforce_rate_limit=rate_limited, rate_limit_burst=5, rate_limit_per_s=1.0
        )
        self.answered: list[tuple[str, float]] = []  # (response_url path, time)

    def answers_under(self, prefix: str) -> list[float]:
        """When each post to a response_url whose path starts with `prefix` came."""
        with self.lock:
            return [at for path, at in self.answered if path.startswith(prefix)]

    def handle(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/response/"):
            with self.lock:
                self.answered.append((request.path, time.time()))
        if request.path.startswith("/services/"):
            with self.lock:
                self.webhooks.append(
                    {"path": request.path, "at": time.time(), **(request.json() or {})}
                )
            return HttpResponse(200, b"ok", {"Content-Type": "text/plain"})
        return super().handle(request)


class Sandbox:
    """Slack, PagerDuty and an SNS signer for `teams` teams, each a channel and a routing key."""

    def __init__(
        self,
        ca: TestCA,
        *,
        teams: int,
        slack_rate_limited: bool = False,
        slack: TimedSlackEmulator | None = None,
        pagerduty: PagerDutyEmulator | None = None,
    ) -> None:
        """`slack`, `pagerduty`: emulators of one's own (e.g. with rate limits), not started."""
        self.ca = ca
        self.teams = teams
        self.slack = slack or TimedSlackEmulator(token=BOT_TOKEN, rate_limited=slack_rate_limited)
        self.slack.add_channel(DEFAULT_CHANNEL, "alerts")
        self.pagerduty = pagerduty or PagerDutyEmulator(
            tls=ca.server_context(), api_token=PD_API_TOKEN
        )
        self.pagerduty.add_escalation_policy("PBENCH", "Bench")
        for k in range(1, teams + 1):
            self.slack.add_channel(channel_id(k), team(k))
            self.pagerduty.add_service(
                f"PSVC{k:04d}", team(k), routing_key=routing_key(k), policy_id="PBENCH"
            )
        self.sns = SnsSigner(tls=ca.server_context())

    def __enter__(self) -> Sandbox:
        self.slack.start()
        self.pagerduty.start()
        self.sns.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.sns.stop()
        self.pagerduty.stop()
        self.slack.stop()

    def webhook_url(self, k: int) -> str:
        return self.slack.webhook_url(team(k))


def alarm_request(sandbox: Sandbox, name: str) -> tuple[bytes, dict[str, str]]:
    """An alarm's ALARM notification, signed by the sandbox's SNS: (body, headers) for /sns."""
    envelope = sandbox.sns.notification(
        alarm_message(name=name, state="ALARM", old_state="OK", at=datetime.now(UTC)),
        topic_arn=TOPIC_ARN,
        subject=alarm_subject(name, "ALARM"),
    )
    headers = {
        "Content-Type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": "Notification",
        "x-amz-sns-message-id": envelope["MessageId"],
        "x-amz-sns-topic-arn": TOPIC_ARN,
    }
    return sns_body(envelope), headers


def confirm_subscription(sandbox: Sandbox, service: Service) -> None:
    """Subscribe `service` to the alarms topic as SNS does: a signed confirmation it confirms.

    SNS sends nothing to an endpoint before its subscription is confirmed, and
    the confirmation is signed with the topic's certificate: a deployed opsbot
    has verified one (and kept its certificate) before its first alarm.
    """
    envelope = sandbox.sns.subscription_confirmation(topic_arn=TOPIC_ARN)
    confirmed = len(sandbox.sns.confirmations)
    answer = httpx.post(
        service.url + "/sns",
        content=sns_body(envelope),
        headers={
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": envelope["Type"],
            "x-amz-sns-message-id": envelope["MessageId"],
            "x-amz-sns-topic-arn": TOPIC_ARN,
        },
        timeout=10.0,
    )
    if answer.status_code != 200 or len(sandbox.sns.confirmations) != confirmed + 1:
        raise RuntimeError(f"subscription not confirmed: {answer.status_code} {answer.text}")


def time_to_page(
    sandbox: Sandbox, service: Service, name: str, timeout_s: float
) -> tuple[float | None, int | None]:
    """(seconds from the POST to the alarm's PagerDuty trigger, the POST's status).

    The client is built before the clock starts: `httpx.post` builds one a call,
    and with it a TLS context from certifi's bundle, about 20 ms here that are
    the benchmark's, not opsbot's. The connection is opened within the time.
    """
    body, headers = alarm_request(sandbox, name)
    status: list[int] = []
    with httpx.Client(timeout=timeout_s) as client:

        def post() -> None:
            try:
                status.append(
                    client.post(service.url + "/sns", content=body, headers=headers).status_code
                )
            except httpx.HTTPError:
                status.append(0)

        # The POST may itself wait behind the siege: the clock runs from sending it.
        sender = threading.Thread(target=post, daemon=True)
        sent_at = time.time()
        sender.start()
        page_at = _trigger_at(sandbox, name, time.monotonic() + timeout_s)
        sender.join(timeout_s if page_at is not None else 1)
    return None if page_at is None else page_at - sent_at, status[0] if status else None


def _trigger_at(sandbox: Sandbox, name: str, deadline: float) -> float | None:
    """When PagerDuty got the alarm's first trigger, once it has; None past `deadline`."""
    while time.monotonic() < deadline:
        with sandbox.pagerduty.lock:
            triggers = [
                e["received_at"]
                for e in sandbox.pagerduty.events
                if e.get("event_action") == "trigger" and name in json.dumps(e.get("payload"))
            ]
        if triggers:
            return float(min(triggers))
        time.sleep(0.01)
    return None


class Databases:
    """Throwaway databases: on PostgreSQL when an admin URL is given, else SQLite files."""

    def __init__(self, admin_url: str | None, directory: Path) -> None:
        self.admin_url = normalise_url(admin_url) if admin_url else None
        self.directory = directory
        self._created: list[str] = []

    @property
    def kind(self) -> str:
        return "postgresql" if self.admin_url else "sqlite"

    def create(self, label: str) -> str:
        suffix = uuid.uuid4().hex[:10]
        if self.admin_url is None:
            return f"sqlite:///{self.directory / f'{label}-{suffix}.db'}"
        name = f"opsbot_bench_{label}_{suffix}"
        admin = make_url(self.admin_url)
        engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        engine.dispose()
        self._created.append(name)
        return admin.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if self.admin_url is None or not self._created:
            return
        engine = sa.create_engine(make_url(self.admin_url), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            for name in self._created:
                drop_database(connection, name)
        engine.dispose()
        self._created.clear()


def opsbot_config(teams: int, *, reopen_window_s: int) -> dict[str, Any]:
    """One route per team (its channel, its routing key), then a catch-all; delivery defaults."""
    routes: list[dict[str, Any]] = [
        {
            "name": team(k),
            "match": {"alarm_name": f"{team(k)}-*"},
            "channel": channel_id(k),
            "pagerduty_routing_key_env": routing_key_env(k),
            "severity": "critical",
        }
        for k in range(1, teams + 1)
    ]
    routes.append({"name": "default", "match": {}, "channel": DEFAULT_CHANNEL})
    return {"alarm_routes": routes, "alarms": {"reopen_window_s": reopen_window_s}}


def opsbot_environment(sandbox: Sandbox, *, database_url: str, config_path: Path) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "OPSBOT_CONFIG": str(config_path),
        "OPSBOT_LOG_LEVEL": "INFO",
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": sandbox.slack.api_url,
        "PAGERDUTY_API_TOKEN": PD_API_TOKEN,
        "PAGERDUTY_API_URL": sandbox.pagerduty.url,
        "PAGERDUTY_EVENTS_URL": sandbox.pagerduty.url,
        "OPSBOT_SNS_TOPIC_ARNS": TOPIC_ARN,
        "OPSBOT_SNS_CERT_URL_PATTERN": sandbox.sns.url_pattern,
        "SSL_CERT_FILE": str(sandbox.ca.ca_file),
    }
    for k in range(1, sandbox.teams + 1):
        env[routing_key_env(k)] = routing_key(k)
    return clean_environment(env)


def start_opsbot(
    sandbox: Sandbox,
    *,
    database_url: str,
    config: dict[str, Any],
    run_dir: Path,
    label: str,
    settle_s: float = 2.0,
    extra_env: dict[str, str] | None = None,
) -> Service:
    """`opsbot serve` in its own process on a free loopback port, once `/readyz` says 200."""
    config_path = run_dir / f"{label}.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = opsbot_environment(sandbox, database_url=database_url, config_path=config_path)
    env.update(extra_env or {})
    return spawn_on_free_port(
        "opsbot",
        lambda port: [
            *(sys.executable, "-m", "bot.cli", "serve"),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        env=env,
        ready_path="/readyz",
        log_path=run_dir / f"{label}.log",
        settle_s=settle_s,
    )
