"""Fixtures of the /dbrole tests: the real role manager behind moto's Lambda, on PostgreSQL.

moto runs a Lambda function's code only in Docker, which this machine lacks. So the
functions are created in moto as they are in AWS (get_function and every other call
is moto's), and their invocations are answered by the sandbox's front door
(sandbox/front_door.py) with the REAL role manager (infra/lambda/role_manager)
running in-process: its handler gets the event, its environment variables are the
function's configuration, it reads the master secret from moto's Secrets Manager and
works on a real PostgreSQL database created for the test.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.settings import Settings
from sandbox.appconfig import AppConfigGaps
from sandbox.front_door import AwsFrontDoor
from sandbox.lambdas import LAMBDA_TRUST_POLICY
from sandbox.slack import SlackEmulator
from tests.conftest import TEST_CONFIG
from tests.deploys.conftest import T0
from tests.support import LiveService

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "infra" / "lambda" / "role_manager"))
import role_manager  # noqa: E402  # the Lambda's own module, from the path above

RELEASES = "C0RELEASES"
# The role-manager tests' lock on the cluster-wide role rds_iam (tests/role_manager):
# held shared here, so rds_iam does not appear or vanish under these tests.
RDS_IAM_LOCK_KEY = 0x0D5B07_1A3
# Environment variables are process-wide: one in-process invocation at a time.
INVOKE_LOCK = threading.Lock()


@dataclass(frozen=True)
class RoleDatabase:
    """The test's application database and the names of its roles and schema."""

    admin_url: str
    dbname: str
    schema: str
    migrator: str
    app: str
    # A master user of the "misnamed" environment's function, as RDS makes one (LOGIN
    # CREATEROLE CREATEDB): that function is told to manage it as its app role.
    master: str
    master_password: str

    def connect(self) -> psycopg.Connection[Any]:
        info = psycopg.conninfo.conninfo_to_dict(self.admin_url)
        info["dbname"] = self.dbname
        return psycopg.connect(psycopg.conninfo.make_conninfo(**info), autocommit=True)

    def roles(self) -> list[str]:
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname",
                ([self.migrator, self.app],),
            ).fetchall()
        return [r[0] for r in rows]


class InProcessRoleManager:
    """Answers a function's invocations with role_manager.handler under its environment."""

    def __init__(self, environment: dict[str, str]) -> None:
        self.environment = environment
        self.events: list[Any] = []

    def invoke(self, event: Any) -> Any:
        with INVOKE_LOCK:
            self.events.append(event)
            saved = {key: os.environ.get(key) for key in self.environment}
            os.environ.update(self.environment)
            try:
                return role_manager.handler(event, None)
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value


def lambda_error(error_type: str) -> type[Exception]:
    """An exception the front door answers with `error_type` as its errorType (its class
    name): Lambda's own types (``Sandbox.Timedout``) are no Python names."""
    return type(error_type, (Exception,), {})


class PackageWithoutPsycopg:
    """A function deployed from a package that lacks psycopg's wheels: its import fails,
    and Lambda's Python runtime answers so, before any handler runs."""

    def invoke(self, event: Any) -> Any:
        raise lambda_error("Runtime.ImportModuleError")(
            "Unable to import module 'role_manager': No module named 'psycopg'"
        )


def _admin_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.fail("TEST_DATABASE_URL is not set: run the suite with `make test` (or set it)")
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def role_database() -> Iterator[RoleDatabase]:
    """A fresh database with unique role and schema names; dropped with its roles after."""
    admin_url = _admin_url()
    suffix = uuid.uuid4().hex[:10]
    db = RoleDatabase(
        admin_url=admin_url,
        dbname=f"dbrole_test_{suffix}",
        schema=f"shop_{suffix}",
        migrator=f"dbr_{suffix}_migrator",
        app=f"dbr_{suffix}_app",
        master=f"dbr_{suffix}_master",
        master_password=uuid.uuid4().hex,
    )
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("SELECT pg_advisory_lock_shared(%s)", (RDS_IAM_LOCK_KEY,))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db.dbname)))
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEROLE CREATEDB PASSWORD {}").format(
                sql.Identifier(db.master), sql.Literal(db.master_password)
            )
        )
        try:
            yield db
        finally:
            _wait_for_sessions_to_end(admin, db.dbname)
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.dbname))
            )
            for role in (db.migrator, db.app, db.master):
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            admin.execute("SELECT pg_advisory_unlock_shared(%s)", (RDS_IAM_LOCK_KEY,))


def _wait_for_sessions_to_end(admin: psycopg.Connection[Any], dbname: str) -> None:
    """A session the role manager closed may still be exiting on the server: FORCE
    would then try to end it, which a test role that is no superuser may not do."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (dbname,)
        ).fetchone()
        if row is None or row[0] == 0:
            return
        time.sleep(0.05)


def _function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(
            REPO / "infra" / "lambda" / "role_manager" / "role_manager.py", "role_manager.py"
        )
    return buffer.getvalue()


@dataclass
class LambdaWorld:
    """The role-manager functions in moto, and what answers each one's invocations."""

    endpoint: str  # the front door: AWS_ENDPOINT_URL of the bot
    door: AwsFrontDoor  # its `server.faults` serve AWS's failures instead of answering
    database: RoleDatabase
    staging: InProcessRoleManager
    prod: InProcessRoleManager
    vault: InProcessRoleManager  # protected, and a second person must approve
    misnamed: InProcessRoleManager  # its APP_ROLE is its own master user


@pytest.fixture
def lambdas(
    moto_server: str,
    aws: Callable[[str], Any],
    role_database: RoleDatabase,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[LambdaWorld]:
    # The role manager's own boto3 client (Secrets Manager) reads AWS_ENDPOINT_URL, as
    # in the Lambda runtime; the bot's clients take theirs from its settings.
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    suffix = role_database.dbname
    info = psycopg.conninfo.conninfo_to_dict(role_database.admin_url)
    secret = aws("secretsmanager").create_secret(
        Name=f"rds!cluster-{suffix}",
        # What RDS stores in the secret it manages for the master user.
        SecretString=json.dumps({"username": info["user"], "password": info["password"]}),
    )
    environment = {
        "DB_HOST": str(info.get("host", "127.0.0.1")),
        "DB_PORT": str(info.get("port", 5432)),
        "DB_NAME": role_database.dbname,
        "DB_SSLMODE": "prefer",  # the local cluster may have no TLS; Terraform sets require
        "MASTER_SECRET_ARN": secret["ARN"],
        "SCHEMA_NAME": role_database.schema,
        "MIGRATOR_ROLE": role_database.migrator,
        "APP_ROLE": role_database.app,
    }
    iam = aws("iam")
    role_name = f"role-manager-{suffix}"
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=LAMBDA_TRUST_POLICY)[
        "Role"
    ]["Arn"]
    functions: dict[str, Any] = {}
    unreachable = {**environment, "DB_PORT": "1", "CONNECT_TIMEOUT_S": "2"}
    master_secret = aws("secretsmanager").create_secret(
        Name=f"rds!cluster-{suffix}-misnamed",
        SecretString=json.dumps(
            {"username": role_database.master, "password": role_database.master_password}
        ),
    )
    misnamed = {
        **environment,
        "MASTER_SECRET_ARN": master_secret["ARN"],
        "APP_ROLE": role_database.master,
    }
    for name, variables, invoker in (
        ("staging", environment, InProcessRoleManager(environment)),
        ("prod", environment, InProcessRoleManager(environment)),
        ("vault", environment, InProcessRoleManager(environment)),
        ("down", unreachable, InProcessRoleManager(unreachable)),
        ("misnamed", misnamed, InProcessRoleManager(misnamed)),
        ("broken", environment, PackageWithoutPsycopg()),
    ):
        function = f"shop-{name}-role-manager-{suffix}"
        aws("lambda").create_function(
            FunctionName=function,
            Runtime="python3.11",
            Role=role,
            Handler="role_manager.handler",
            Code={"ZipFile": _function_zip()},
            Timeout=60,
            Environment={"Variables": variables},
        )
        functions[function] = invoker
    door = AwsFrontDoor(moto_url=moto_server, appconfig=AppConfigGaps(), functions=functions)
    door.start()
    try:
        yield LambdaWorld(
            endpoint=door.url,
            door=door,
            database=role_database,
            staging=functions[f"shop-staging-role-manager-{suffix}"],
            prod=functions[f"shop-prod-role-manager-{suffix}"],
            vault=functions[f"shop-vault-role-manager-{suffix}"],
            misnamed=functions[f"shop-misnamed-role-manager-{suffix}"],
        )
    finally:
        door.stop()
        for function in functions:
            aws("lambda").delete_function(FunctionName=function)
        iam.delete_role(RoleName=role_name)


def dbrole_config(suffix: str) -> dict[str, Any]:
    """An app whose environments cover every case /dbrole meets."""
    common = {"service": "shop", "container": "app", "repository": "shop", "cluster": "c"}
    deployers = {"users": ["U0ALICE", "U0BOB"]}

    def env(name: str | None, **more: Any) -> dict[str, Any]:
        settings = {**common, "deployers": deployers, **more}
        if name is not None:
            settings["dbrole"] = {"function": f"shop-{name}-role-manager-{suffix}"}
        return settings

    environments = {
        "staging": env("staging"),
        "prod": env("prod", protected=True, release_channel=RELEASES),
        "vault": env("vault", protected=True, require_approval=True, release_channel=RELEASES),
        "dev": env(None),  # no role manager configured
        "qa": env("qa"),  # names a function that does not exist
        "down": env("down"),  # its database does not answer
        "misnamed": env("misnamed"),  # told to manage its own master user
        "broken": env("broken"),  # its code cannot even be imported
    }
    for name, settings in environments.items():
        settings["service"] = f"shop-{name}"  # one environment per ECS service
    return {**TEST_CONFIG, "apps": {"shop": {"environments": environments}}}


@pytest.fixture
def live(
    settings: Settings,
    slack: SlackEmulator,
    lambdas: LambdaWorld,
    make_service: Callable[..., LiveService],
) -> LiveService:
    """The bot serving Slack on loopback, its AWS endpoint the front door."""
    slack.add_channel(RELEASES, "releases")
    slack.add_user("U0CAROL", "carol", email="carol@example.com")
    config: Config = parse_config(dbrole_config(lambdas.database.dbname))
    aws_settings = settings.model_copy(update={"aws_endpoint_url": lambdas.endpoint})
    return make_service(aws_settings, config, clock=ManualClock(T0), run_jobs=False)
