"""Fixtures: both databases, the emulators on loopback, moto server, a live service.

Every test that takes `database_url` runs twice: on SQLite and on real
PostgreSQL (TEST_DATABASE_URL, which `make test` provides via .ci/test-postgres).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy.engine import make_url

from bot.config import Config, parse_config
from bot.db.engine import make_engine, normalise_url
from bot.db.migrate import upgrade
from bot.settings import Settings
from sandbox.databases import drop_database
from sandbox.environment import settings_variables
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from sandbox.tls import TestCA, make_test_ca
from tests.support import LiveService, start_service

SLACK_SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TOKEN = "xoxb-sandbox"
PD_API_TOKEN = "pd-rest-token-for-tests"
PD_ROUTING_KEY = "R0PRODROUTINGKEY00000000000000000"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:alarms"

# Shared machines are slow and noisy: no per-example deadlines, no "too slow" failures.
hypothesis_settings.register_profile(
    "opsbot", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
hypothesis_settings.load_profile("opsbot")

# Dropped too, beyond what Settings reads (sandbox.environment): the routing key
# variable TEST_CONFIG names, and the deploy CLI's OPSBOT_ACTOR.
OTHER_OPSBOT_VARIABLES = ("PD_KEY_PROD", "OPSBOT_ACTOR")

TEST_CONFIG: dict[str, Any] = {
    "alarm_routes": [
        {
            "name": "prod",
            "match": {"alarm_name": "prod-*"},
            "channel": "C0PRODALERTS",
            "pagerduty_routing_key_env": "PD_KEY_PROD",
            "severity": "critical",
            "mention": "<!subteam^S0ONCALL>",
        },
        {"name": "default", "match": {}, "channel": "C0ALERTS"},
    ],
    # Folding and grouping are off here; tests/alarms/test_storm_reading.py turns them on.
    "alarms": {"reopen_window_s": 0, "queue_wait_s": 1, "fold_window_s": 0, "group_above": 0},
    "delivery": {
        "max_backoff_s": 1.0,
        "lease_s": 5.0,
        "poll_interval_s": 0.2,
        "request_timeout_s": 2.0,
    },
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*settings_variables(), *OTHER_OPSBOT_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PD_KEY_PROD", PD_ROUTING_KEY)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """The root logger's handlers as before the test.

    A test that runs the CLI in-process gets `configure_logging`'s handler on the
    stderr pytest captured for that test; left in place, every later log line of
    a thread still running (an outbox sender retrying) would go to a closed file.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


# -- databases --------------------------------------------------------------------------


def _admin_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.fail("TEST_DATABASE_URL is not set: run the suite with `make test` (or set it)")
    return normalise_url(url)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test session, migrated once."""
    admin = make_url(_admin_url())
    name = f"opsbot_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with engine.connect() as connection:
        drop_database(connection, name)
    engine.dispose()


def _truncate_all(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        tables = [t for t in sa.inspect(connection).get_table_names() if t != "alembic_version"]
        if tables:
            names = ", ".join(f'"{t}"' for t in tables)
            connection.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'opsbot.db'}"
        upgrade(url)
        return url
    url = str(request.getfixturevalue("postgres_url"))
    _truncate_all(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


# -- emulators --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_test_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    emulator = SlackEmulator(token=SLACK_TOKEN)
    # Triggers expire when a test says (`expire_trigger`), not when the machine is slow.
    emulator.trigger_ttl_s = 60.0
    emulator.add_channel("C0ALERTS", "alerts")
    emulator.add_channel("C0PRODALERTS", "prod-alerts")
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def pagerduty(test_ca: TestCA) -> Iterator[PagerDutyEmulator]:
    emulator = PagerDutyEmulator(tls=test_ca.server_context(), api_token=PD_API_TOKEN)
    emulator.add_user("PALICE", "Alice Example", "alice@example.com")
    emulator.add_user("PBOB", "Bob Example", "bob@example.com")
    emulator.add_escalation_policy("PPOLICY", "Production")
    emulator.add_schedule("PSCHED", "Primary")
    emulator.add_oncall(policy_id="PPOLICY", level=1, user_id="PALICE", schedule_id="PSCHED")
    emulator.add_oncall(policy_id="PPOLICY", level=2, user_id="PBOB")
    emulator.add_service("PSERVICE", "prod-api", routing_key=PD_ROUTING_KEY, policy_id="PPOLICY")
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def sns_signer(test_ca: TestCA) -> Iterator[SnsSigner]:
    signer = SnsSigner(tls=test_ca.server_context()).start()
    yield signer
    signer.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto in server mode on loopback; its URL is what AWS_ENDPOINT_URL points at."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server: str) -> Callable[[str], Any]:
    """boto3 clients on moto server, the way the service builds them."""
    from bot.adapters.aws import client

    return lambda service: client(service, region="us-east-1", endpoint_url=moto_server)


# -- the service ------------------------------------------------------------------------


@pytest.fixture
def config() -> Config:
    return parse_config(TEST_CONFIG)


@pytest.fixture
def settings(
    database_url: str,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    sns_signer: SnsSigner,
    test_ca: TestCA,
) -> Settings:
    return Settings(
        database_url=database_url,
        slack_bot_token=SLACK_TOKEN,
        slack_signing_secret=SLACK_SIGNING_SECRET,
        slack_api_url=slack.api_url,
        pagerduty_api_token=PD_API_TOKEN,
        pagerduty_api_url=pagerduty.url,
        pagerduty_events_url=pagerduty.url,
        sns_topic_arns=[TOPIC_ARN],
        sns_url_pattern=sns_signer.url_pattern,
        ssl_cert_file=test_ca.ca_file,
    )


@pytest.fixture
def make_service() -> Iterator[Callable[..., LiveService]]:
    started: list[LiveService] = []

    def make(settings: Settings, config: Config, **kwargs: Any) -> LiveService:
        service = start_service(settings, config, **kwargs)
        started.append(service)
        return service

    yield make
    for service in started:
        service.stop()


@pytest.fixture
def service(
    settings: Settings, config: Config, make_service: Callable[..., LiveService]
) -> LiveService:
    return make_service(settings, config)
