"""Fixtures for the role-manager Lambda's tests: real PostgreSQL, moto for Secrets Manager.

The Lambda's code lives in infra/lambda/role_manager/ (Terraform packages it from there);
its directory is put on sys.path here so `import role_manager` works without making it
part of the `bot` package. Every fixture is prefixed `rm_` to stay clear of the suite's
root conftest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from moto.server import ThreadedMotoServer
from psycopg import sql

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "infra" / "lambda" / "role_manager"))

# Session-level advisory lock key guarding the cluster-wide role rds_iam: tests that
# expect it absent hold it shared, the test that creates it holds it exclusively, so
# several checkouts can run this suite against one cluster at once.
RDS_IAM_LOCK_KEY = 0x0D5B07_1A3


@dataclass(frozen=True)
class RmDatabase:
    """A throwaway database and the unique names of one test's roles and schema."""

    admin_url: str
    host: str
    port: int
    dbname: str
    user: str
    password: str
    schema: str
    migrator: str
    app: str

    def url(self, user: str | None = None, password: str | None = None) -> str:
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            dbname=self.dbname,
            user=user or self.user,
            password=password or self.password,
        )

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url(), autocommit=True, **kwargs)


@pytest.fixture(scope="session")
def rm_admin_url() -> str:
    """libpq URL of a role with CREATEDB and CREATEROLE (TEST_DATABASE_URL, set by make)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        url = subprocess.run(
            [str(REPO / ".ci" / "test-postgres")], check=True, capture_output=True, text=True
        ).stdout.strip()
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def rm_superuser_url(rm_admin_url: str) -> str:
    """libpq URL of a superuser of rm_admin_url's cluster (sets the cluster up like RDS)."""
    url = os.environ.get("TEST_SUPERUSER_DATABASE_URL")
    if not url:
        made = subprocess.run(
            [str(REPO / ".ci" / "test-postgres"), "--superuser"], capture_output=True, text=True
        )
        if made.returncode != 0:
            pytest.fail(
                "no superuser for the role-manager tests: set TEST_SUPERUSER_DATABASE_URL to a "
                f"superuser of TEST_DATABASE_URL's server ({made.stderr.strip()})"
            )
        url = made.stdout.strip()
    url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    ours, admins = (psycopg.conninfo.conninfo_to_dict(u) for u in (url, rm_admin_url))
    if (ours.get("host"), ours.get("port")) != (admins.get("host"), admins.get("port")):
        pytest.fail(
            "the role-manager tests need a superuser of TEST_DATABASE_URL's server: set "
            "TEST_SUPERUSER_DATABASE_URL (this checkout's own cluster is another server)"
        )
    return url


@pytest.fixture(scope="session")
def rm_moto() -> Iterator[str]:
    """A moto server on loopback; yields its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def rm_aws(rm_moto: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """boto3 pointed at moto through AWS_ENDPOINT_URL, as the Lambda's own client is."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", rm_moto)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return boto3.client("secretsmanager")


def _drop_database(admin: psycopg.Connection[Any], dbname: str) -> None:
    """DROP DATABASE, once the test's own sessions have ended.

    A session the test closed may still be ending on the server; WITH (FORCE)
    cannot end it for us, as it belongs to a role the admin is not a member of
    (a `make test` run failed on it once), so wait for it a little.
    """
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
    for _ in range(50):
        try:
            admin.execute(drop)
            return
        except psycopg.errors.InsufficientPrivilege:
            time.sleep(0.1)
    admin.execute(drop)


@pytest.fixture
def rm_database(rm_admin_url: str) -> Iterator[RmDatabase]:
    """A fresh database with unique role and schema names; dropped with its roles after."""
    suffix = uuid.uuid4().hex[:10]
    info = psycopg.conninfo.conninfo_to_dict(rm_admin_url)
    db = RmDatabase(
        admin_url=rm_admin_url,
        host=str(info.get("host", "127.0.0.1")),
        port=int(info.get("port", 5432)),
        dbname=f"rm_test_{suffix}",
        user=str(info["user"]),
        password=str(info["password"]),
        schema=f"app_{suffix}",
        migrator=f"rm_{suffix}_migrator",
        app=f"rm_{suffix}_app",
    )
    with psycopg.connect(rm_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db.dbname)))
    try:
        yield db
    finally:
        with psycopg.connect(rm_admin_url, autocommit=True) as admin:
            _drop_database(admin, db.dbname)
            for role in (db.migrator, db.app):
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def rm_env(rm_database: RmDatabase, rm_aws: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The Lambda's environment for rm_database, with the master secret stored in moto."""
    secret = rm_aws.create_secret(
        Name=f"rds!cluster-{rm_database.dbname}",
        SecretString=json.dumps({"username": rm_database.user, "password": rm_database.password}),
    )
    env = {
        "DB_HOST": rm_database.host,
        "DB_PORT": str(rm_database.port),
        "DB_NAME": rm_database.dbname,
        "DB_SSLMODE": "prefer",  # the local cluster may have no TLS; Terraform sets require
        "MASTER_SECRET_ARN": secret["ARN"],
        "SCHEMA_NAME": rm_database.schema,
        "MIGRATOR_ROLE": rm_database.migrator,
        "APP_ROLE": rm_database.app,
    }
    for key in ("MIGRATOR_PASSWORD_SECRET_ARN", "APP_PASSWORD_SECRET_ARN"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def rm_passwords(
    rm_env: dict[str, str], rm_aws: Any, rm_database: RmDatabase, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Password secrets for both roles (the password-login mode); returns role -> password."""
    passwords: dict[str, str] = {}
    for role, key in (
        (rm_database.migrator, "MIGRATOR_PASSWORD_SECRET_ARN"),
        (rm_database.app, "APP_PASSWORD_SECRET_ARN"),
    ):
        password = uuid.uuid4().hex + uuid.uuid4().hex
        secret = rm_aws.create_secret(
            Name=f"{rm_database.dbname}/{role}", SecretString=json.dumps({"password": password})
        )
        monkeypatch.setenv(key, secret["ARN"])
        passwords[role] = password
    return passwords


@pytest.fixture(autouse=True)
def rm_rds_iam_lock(request: pytest.FixtureRequest, rm_admin_url: str) -> Iterator[None]:
    """Holds the rds_iam lock shared through every test that does not create rds_iam.

    Any `manage` grants rds_iam when it exists; a test on another worker dropping it
    mid-test would take those grants away and make the catalog change under the test.
    """
    if {"rm_with_rds_iam", "rm_rds"} & set(request.fixturenames):  # they lock exclusively
        yield
        return
    with psycopg.connect(rm_admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock_shared(%s)", (RDS_IAM_LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock_shared(%s)", (RDS_IAM_LOCK_KEY,))


@pytest.fixture
def rm_rds_iam_exists(rm_admin_url: str, rm_rds_iam_lock: None) -> bool:
    """Whether rds_iam exists (on plain PostgreSQL: no), steady under the shared lock."""
    with psycopg.connect(rm_admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam'").fetchone()
        return row is not None


@pytest.fixture
def rm_with_rds_iam(rm_admin_url: str) -> Iterator[None]:
    """Makes the role rds_iam exist (as on RDS) during the test, holding the lock exclusively."""
    with psycopg.connect(rm_admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (RDS_IAM_LOCK_KEY,))
        try:
            created = (
                conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam'").fetchone() is None
            )
            if created:
                conn.execute("CREATE ROLE rds_iam NOLOGIN")
            try:
                yield
            finally:
                if created:
                    conn.execute("DROP ROLE rds_iam")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (RDS_IAM_LOCK_KEY,))


# The roles RDS makes in every cluster (as its superuser rdsadmin), as the fixture below
# makes them: name -> attributes. rds_superuser is the master user's group.
RDS_ROLES = {
    "rdsadmin": "LOGIN SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS",
    "rds_superuser": "NOLOGIN CREATEDB CREATEROLE",
    "rds_iam": "NOLOGIN",
    "rds_password": "NOLOGIN",
    "rds_replication": "NOLOGIN",
}
# What RDS grants its master's group WITH ADMIN OPTION.
RDS_SUPERUSER_GROUPS = ("pg_monitor", "pg_signal_backend", "rds_password", "rds_replication")


@dataclass(frozen=True)
class RdsLike:
    """rm_database set up as on RDS: its master is no superuser, but in rds_superuser."""

    superuser_url: str
    master: str
    master_password: str
    # Roles a test makes; dropped after the database (they may hold grants in it).
    also_drop: list[str] = field(default_factory=list)

    def superuser(self, db: RmDatabase) -> psycopg.Connection[Any]:
        """A superuser's session in the test's database (pg_authid is readable)."""
        info = psycopg.conninfo.conninfo_to_dict(self.superuser_url)
        info["dbname"] = db.dbname
        return psycopg.connect(psycopg.conninfo.make_conninfo(**info), autocommit=True)


@pytest.fixture
def rm_rds(
    rm_admin_url: str,
    rm_superuser_url: str,
    rm_database: RmDatabase,
    rm_env: dict[str, str],
    rm_aws: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[RdsLike]:
    """The cluster's RDS roles, and a master user as RDS makes one, whose secret the
    function reads: LOGIN CREATEROLE CREATEDB, a member of rds_superuser, owner of the
    test's database. Holds the rds_iam lock exclusively (rds_iam is created here too);
    RDS roles that existed already are left as they were.
    """
    ident = sql.Identifier
    master = f"{rm_database.migrator.removesuffix('_migrator')}_master"
    password = uuid.uuid4().hex
    rds = RdsLike(superuser_url=rm_superuser_url, master=master, master_password=password)
    with (
        psycopg.connect(rm_admin_url, autocommit=True) as locker,
        psycopg.connect(rm_superuser_url, autocommit=True) as su,
    ):
        locker.execute("SELECT pg_advisory_lock(%s)", (RDS_IAM_LOCK_KEY,))
        created: list[str] = []
        try:
            for name, attributes in RDS_ROLES.items():
                if su.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                    continue
                su.execute(sql.SQL("CREATE ROLE {} " + attributes).format(ident(name)))
                created.append(name)
            for group in RDS_SUPERUSER_GROUPS:
                su.execute(
                    sql.SQL("GRANT {} TO rds_superuser WITH ADMIN OPTION").format(ident(group))
                )
            su.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEROLE CREATEDB PASSWORD {}").format(
                    ident(master), sql.Literal(password)
                )
            )
            su.execute(sql.SQL("GRANT rds_superuser TO {}").format(ident(master)))
            su.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                    ident(rm_database.dbname), ident(master)
                )
            )
            secret = rm_aws.create_secret(
                Name=f"rds!cluster-{rm_database.dbname}-master",
                SecretString=json.dumps({"username": master, "password": password}),
            )
            monkeypatch.setenv("MASTER_SECRET_ARN", secret["ARN"])
            yield rds
        finally:
            # The master owns the database: it goes first, then the roles made here.
            su.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident(rm_database.dbname))
            )
            roles = [rm_database.migrator, rm_database.app, master]
            for name in [*reversed(rds.also_drop), *roles, *reversed(created)]:
                su.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident(name)))
            locker.execute("SELECT pg_advisory_unlock(%s)", (RDS_IAM_LOCK_KEY,))
