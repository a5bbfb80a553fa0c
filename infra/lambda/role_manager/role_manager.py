"""Role manager: creates, repairs and checks the database roles of one application database.

Invoked synchronously (by opsbot's /dbrole, or by an operator) with
``{"action": "manage"}`` or ``{"action": "check"}``.

``manage`` makes the database look like this, idempotently (a second run changes nothing):

- a schema (SCHEMA_NAME) owned by the migrator role;
- a migrator role (MIGRATOR_ROLE): LOGIN, owns the schema, runs DDL;
- an app role (APP_ROLE): LOGIN, USAGE on the schema, DML on its tables and sequences,
  through default privileges so tables the migrator creates later are covered too, and
  no CREATE on the schema: CREATE granted to it or to PUBLIC there is revoked;
- both roles log in with RDS IAM authentication (membership in ``rds_iam``), unless a
  password secret is configured for the role (MIGRATOR_PASSWORD_SECRET_ARN /
  APP_PASSWORD_SECRET_ARN): RDS refuses password logins of ``rds_iam`` members, so such a
  role gets the secret's password instead. Where ``rds_iam`` does not exist (a plain
  PostgreSQL) the result says so and the rest is granted;
- both roles' search_path is the schema; CREATE on the ``public`` schema is revoked from
  PUBLIC, and from either role if it was granted to it directly.

A REVOKE takes away only a grant to whom it names, and only one its grantor made: a
REVOKE that leaves the grant in place is an error, never a change. A membership through
which the app role can create in its schema (in the migrator, say), or either role in
``public``, is an error in both actions that a person resolves: the function ends no
membership and changes no other role's grants. So is the app role's other DDL: CREATE on
the database or on any other schema, and a relation of the schema it (or anyone but the
migrator) owns; the function changes no owner there.

``check`` reports the same state without changing anything (it runs in a read-only
transaction): each role with its attributes, grants and memberships, whether the app
role reaches every table of the schema, and, as errors, every difference ``manage``
would repair and every one it leaves to a person.

The master credentials come from the RDS-managed Secrets Manager secret
(MASTER_SECRET_ARN); host, port and database from DB_HOST, DB_PORT and DB_NAME. Role and
schema names come only from the environment, are validated against
``^[a-z_][a-z0-9_]{0,62}$`` and reach SQL only as ``psycopg.sql.Identifier``.

It refuses what it must not touch, before its first change: the result has ``ok``
false, ``refused`` true and one error per refused name saying which setting named what
and why, and each refusal is logged once (``role manager refused: {...}``, the name as
its repr). The function runs as the master user, so a role it manages gets the app's
password or IAM login, and whoever holds those credentials gets that role's powers.
Before it reads a secret or connects it refuses role names of RDS (``rds*``:
rds_superuser, rds_iam, rdsadmin, ...) and of PostgreSQL (``pg_*``, ``postgres``,
``public``, ``none``), and schema names of PostgreSQL (``pg_*``, ``information_schema``,
``public``) and of RDS's extensions (``rds*``, ``aws_*``, ``apg_*``). Connected, in the
transaction that would make the changes and before any of them, it refuses the master
user's own name (the secret's username, the session's user), an existing role that is
SUPERUSER, CREATEROLE, REPLICATION or BYPASSRLS or a member (directly or not) of a role
it refuses by name, of the master, or of any role that has one of those attributes (its
members may SET ROLE to it), and an existing schema owned by such a role.

The result is JSON the bot renders::

    {"action": "manage", "ok": true, "summary": "manage: 11 change(s) made",
     "changed": ["create role app", ...],
     "roles": [{"name": "app", "attributes": ["LOGIN", ...], "grants": [...],
                "member_of": ["rds_iam"]}],
     "schema": {"name": "app", "exists": true, "owner": "migrator"},
     "tables_reachable": true, "tables": {"count": 3, "unreachable": []},
     "warnings": [...], "errors": [...], "refused": false, "committed": true, "ran": true}

A run that fails says so in its errors, and never in the failure's own words, which go
to the function's log: a database error as its class and SQLSTATE (libpq's message names
the server), an AWS error as its code and what the function was doing (AWS's message
names the account, the function's role and the secret), anything else as its type.
``committed`` is true once manage's transaction is committed: a failure after that
(describing the roles, say) keeps ``changed``, since those changes stand; one before it
rolled everything back and reports nothing changed. ``ran`` is false when the run ended
before it checked or changed anything (an invalid configuration or action, a secret it
could not read, a database it could not reach, a failure before manage's commit): the
result has only its errors.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import boto3  # type: ignore[import-untyped]
import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from psycopg import sql

log = logging.getLogger("role_manager")
log.setLevel(logging.INFO)

NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
RDS_IAM_ROLE = "rds_iam"

# Role names the function never manages, with the reason a person reads. Configured names
# are lower-case only (NAME_PATTERN), so no case variant of these can be configured.
RESERVED_ROLE_PREFIXES = (
    (
        "rds",
        "RDS's own roles start with 'rds' (rds_superuser, rds_iam, rds_replication,"
        " rds_password, rdsadmin, ...)",
    ),
    ("pg_", "PostgreSQL's predefined roles start with 'pg_' (pg_monitor, pg_read_all_data, ...)"),
)
RESERVED_ROLES = {
    "postgres": "it is PostgreSQL's bootstrap superuser and RDS's default master user",
    "public": "PostgreSQL reserves it: PUBLIC stands for every role",
    "none": "PostgreSQL reserves it",
    "information_schema": "it is PostgreSQL's own name (the catalog views' schema)",
}
# Schema names that belong to PostgreSQL or to RDS's extensions (aws_s3, aws_commons,
# aws_lambda, aws_ml, rds_tools, apg_plan_mgmt): handing one to the migrator would give
# the app's migrations the server's objects.
RESERVED_SCHEMA_PREFIXES = (
    ("pg_", "PostgreSQL's system schemas start with 'pg_' (pg_catalog, pg_toast, pg_temp_*)"),
    ("rds", "schemas starting with 'rds' belong to RDS (rds_tools)"),
    ("aws_", "schemas starting with 'aws_' belong to RDS's extensions (aws_s3, aws_commons, ...)"),
    ("apg_", "schemas starting with 'apg_' belong to Aurora's extensions (apg_plan_mgmt)"),
)
RESERVED_SCHEMAS = {
    "information_schema": "it is PostgreSQL's catalog views' schema",
    "public": "every role shares it; the app's tables belong in a schema the migrator owns",
}
# A role the function makes never has these; an existing role that has one is not taken
# over (its password or IAM login would hand the power to the app's credentials).
POWER_ATTRIBUTES = (
    ("rolsuper", "SUPERUSER"),
    ("rolcreaterole", "CREATEROLE"),
    ("rolreplication", "REPLICATION"),
    ("rolbypassrls", "BYPASSRLS"),
)
# Memberships the function grants itself, or that confer nothing over other roles:
# pg_database_owner's one member is the current database's owner.
HARMLESS_GROUPS = frozenset({RDS_IAM_ROLE, "pg_database_owner"})
ACTIONS = ("manage", "check")

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")

# What both managed roles must look like (pg_roles column -> wanted value).
ROLE_ATTRIBUTES: dict[str, tuple[bool, str, str]] = {
    "rolcanlogin": (True, "LOGIN", "NOLOGIN"),
    "rolinherit": (True, "INHERIT", "NOINHERIT"),
    "rolsuper": (False, "SUPERUSER", "NOSUPERUSER"),
    "rolcreatedb": (False, "CREATEDB", "NOCREATEDB"),
    "rolcreaterole": (False, "CREATEROLE", "NOCREATEROLE"),
    "rolreplication": (False, "REPLICATION", "NOREPLICATION"),
    "rolbypassrls": (False, "BYPASSRLS", "NOBYPASSRLS"),
}


class ConfigError(Exception):
    """The function's configuration is invalid; nothing was run."""


@dataclass(frozen=True)
class Refusal:
    """A name the function must not touch: the setting that names it, the name, and why."""

    setting: str  # MIGRATOR_ROLE, APP_ROLE or SCHEMA_NAME
    name: str
    why: str

    @property
    def message(self) -> str:
        """The error a person reads."""
        return f"refused, nothing was changed: {self.setting}={self.name!r}: {self.why}"

    def log(self, action: str) -> None:
        """The refusal's one log line: JSON fields, the name as its repr."""
        fields = {
            "event": "role_manager.refused",
            "action": action,
            "setting": self.setting,
            "refused_name": repr(self.name),
            "reason": self.why,
        }
        log.warning("role manager refused: %s", json.dumps(fields), extra=fields)


class Refused(Exception):
    """The configuration names what the function must not touch; nothing was changed."""

    def __init__(self, refusals: list[Refusal]) -> None:
        super().__init__("; ".join(r.message for r in refusals))
        self.refusals = refusals


NEVER = "; the role manager never manages it"


def role_name_refusal(name: str) -> str | None:
    """Why the function never manages a role of this name, or None."""
    for prefix, why in RESERVED_ROLE_PREFIXES:
        if name.startswith(prefix):
            return why
    return RESERVED_ROLES.get(name)


def schema_name_refusal(name: str) -> str | None:
    """Why the function never manages a schema of this name, or None."""
    for prefix, why in RESERVED_SCHEMA_PREFIXES:
        if name.startswith(prefix):
            return why
    return RESERVED_SCHEMAS.get(name)


# libpq's modes; Terraform allows only those that encrypt (infra/modules/role-manager), and
# the two verify modes need PGSSLROOTCERT, the RDS CA bundle the package carries.
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class Config:
    """Everything the function needs, read once from the environment."""

    host: str
    port: int
    dbname: str
    sslmode: str
    master_secret_arn: str
    schema: str
    migrator: str
    app: str
    migrator_password_secret_arn: str | None = None
    app_password_secret_arn: str | None = None
    connect_timeout_s: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """Build the config, or raise ConfigError naming every bad setting.

        Raises Refused when every setting is well formed but a name is one the function
        never manages.
        """
        problems: list[str] = []
        refused: list[Refusal] = []

        def required(key: str) -> str:
            value = env.get(key, "").strip()
            if not value:
                problems.append(f"{key} is not set")
            return value

        def name(key: str, default: str, refusal: Callable[[str], str | None]) -> str:
            value = env.get(key, default)
            if not NAME_PATTERN.fullmatch(value):
                problems.append(
                    f"{key}={value!r} is not a valid name: use lower-case letters, digits and"
                    " underscores, starting with a letter or underscore, at most 63 characters"
                )
            elif (why := refusal(value)) is not None:
                refused.append(Refusal(key, value, why + NEVER))
            return value

        host = required("DB_HOST")
        dbname = required("DB_NAME")
        master_secret_arn = required("MASTER_SECRET_ARN")
        schema = name("SCHEMA_NAME", "app", schema_name_refusal)
        migrator = name("MIGRATOR_ROLE", "migrator", role_name_refusal)
        app = name("APP_ROLE", "app", role_name_refusal)
        if migrator == app:
            problems.append("MIGRATOR_ROLE and APP_ROLE must differ")
        port_text = env.get("DB_PORT", "5432")
        timeout_text = env.get("CONNECT_TIMEOUT_S", "10")
        sslmode = env.get("DB_SSLMODE", "verify-full")
        if sslmode not in SSLMODES:
            problems.append(f"DB_SSLMODE={sslmode!r} is not one of {', '.join(SSLMODES)}")
        elif sslmode.startswith("verify-"):
            # libpq reads the CA bundle from PGSSLROOTCERT; say so here rather than let
            # every connection fail with libpq's own words.
            root = env.get("PGSSLROOTCERT", "")
            if not root or not os.path.isfile(root):
                problems.append(
                    f"DB_SSLMODE={sslmode} needs PGSSLROOTCERT, the RDS CA bundle in the "
                    f"package (it is {root!r})"
                )
        port = int(port_text) if port_text.isdigit() else 0
        if not 0 < port < 65536:
            problems.append(f"DB_PORT={port_text!r} is not a port number")
        if not timeout_text.isdigit():
            problems.append(f"CONNECT_TIMEOUT_S={timeout_text!r} is not a number of seconds")
        if problems:
            raise ConfigError("; ".join(problems + [r.message for r in refused]))
        if refused:
            raise Refused(refused)
        return cls(
            host=host,
            port=port,
            dbname=dbname,
            sslmode=sslmode,
            master_secret_arn=master_secret_arn,
            schema=schema,
            migrator=migrator,
            app=app,
            migrator_password_secret_arn=env.get("MIGRATOR_PASSWORD_SECRET_ARN") or None,
            app_password_secret_arn=env.get("APP_PASSWORD_SECRET_ARN") or None,
            connect_timeout_s=int(timeout_text),
        )

    def password_secret_of(self, role: str) -> str | None:
        """The password secret configured for a managed role, if any."""
        if role == self.migrator:
            return self.migrator_password_secret_arn
        return self.app_password_secret_arn


@dataclass
class Step:
    """One repair: what a person reads, and the statement that does it."""

    description: str
    statement: sql.SQL | sql.Composed
    # The plan's own test for this repair, asked again once the statement ran: true means
    # it changed nothing (a REVOKE of a grant the master user did not make is no error).
    still_needed: Callable[[psycopg.Connection[Any]], bool] | None = None
    # What a person reads when the statement changed nothing: what is still there and why.
    kept: str = (
        "the grant is still there (one made by a role other than the schema's owner, or on a"
        " schema the master user does not own, survives it)"
    )


@dataclass
class Report:
    """The JSON result, built up as the function runs."""

    action: str
    changed: list[str] = field(default_factory=list)
    roles: list[dict[str, Any]] = field(default_factory=list)
    schema: dict[str, Any] = field(default_factory=dict)
    tables_reachable: bool = False
    tables: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refused: bool = False
    # manage's transaction was committed: what `changed` lists is made, even if the run
    # failed afterwards (before the commit, a failure rolls everything back).
    committed: bool = False
    # False: the run ended before it checked or changed anything; its errors say why.
    ran: bool = True

    def refuse(self, refusals: list[Refusal]) -> None:
        """Report a refusal: one error per refused name, nothing changed."""
        self.refused = True
        self.errors += [r.message for r in refusals]

    @property
    def summary(self) -> str:
        """One line for whoever reads the raw result (the bot renders its own)."""
        if self.refused:
            return f"{self.action}: refused, nothing was changed"
        if self.action == "manage" and not self.errors:
            if not self.changed:
                return "manage: nothing to change, everything was in order"
            return f"manage: {len(self.changed)} change(s) made"
        if self.action == "check" and not self.errors:
            return "check: everything is in order"
        if self.changed:
            return f"{self.action}: {len(self.changed)} change(s) made, {len(self.errors)} error(s)"
        return f"{self.action or 'no action'}: {len(self.errors)} error(s)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "ok": not self.errors,
            "summary": self.summary,
            "changed": self.changed,
            "roles": self.roles,
            "schema": self.schema,
            "tables_reachable": self.tables_reachable,
            "tables": self.tables,
            "warnings": self.warnings,
            "errors": self.errors,
            "refused": self.refused,
            "committed": self.committed,
            "ran": self.ran,
        }


# --- AWS ---------------------------------------------------------------------------------


def read_secret(arn: str) -> dict[str, Any]:
    """A JSON secret's value. AWS_ENDPOINT_URL (honoured by boto3) points it at an emulator."""
    client = boto3.client("secretsmanager")
    value = client.get_secret_value(SecretId=arn)["SecretString"]
    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise ValueError(f"secret {arn} is not a JSON object")
    return parsed


# --- inspection (read-only) ----------------------------------------------------------------


def role_row(conn: psycopg.Connection[Any], role: str) -> dict[str, Any] | None:
    cur = conn.execute(
        "SELECT rolname, rolcanlogin, rolinherit, rolsuper, rolcreatedb, rolcreaterole,"
        " rolreplication, rolbypassrls, rolconnlimit, coalesce(rolconfig, '{}') AS rolconfig"
        " FROM pg_roles WHERE rolname = %s",
        (role,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    columns = [c.name for c in cur.description or []]
    return dict(zip(columns, row, strict=True))


def current_user(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


def session_user(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT session_user").fetchone()
    assert row is not None
    return str(row[0])


def role_exists(conn: psycopg.Connection[Any], role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def member_of(conn: psycopg.Connection[Any], role: str) -> list[str]:
    rows = conn.execute(
        "SELECT g.rolname FROM pg_auth_members m"
        " JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member"
        " WHERE r.rolname = %s ORDER BY g.rolname",
        (role,),
    ).fetchall()
    return [r[0] for r in rows]


def is_member(conn: psycopg.Connection[Any], member: str, group: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
        " JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s AND g.rolname = %s",
        (member, group),
    ).fetchone()
    return row is not None


def schema_owner(conn: psycopg.Connection[Any], schema: str) -> str | None:
    row = conn.execute(
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", (schema,)
    ).fetchone()
    return None if row is None else str(row[0])


def has_privilege(conn: psycopg.Connection[Any], function: str, *args: str) -> bool:
    """has_database_privilege / has_schema_privilege ... for an existing role."""
    query = sql.SQL("SELECT {}({})").format(
        sql.Identifier(function), sql.SQL(", ").join(sql.Placeholder() * len(args))
    )
    row = conn.execute(query, args).fetchone()
    return bool(row and row[0])


def schema_grants_create(conn: psycopg.Connection[Any], schema: str, grantee: str | None) -> bool:
    """Whether the schema's ACL grants CREATE to `grantee` itself (None: to PUBLIC).

    Not as its owner, not through a membership: only such a grant is what
    ``REVOKE CREATE ON SCHEMA ... FROM grantee`` can take away.
    """
    row = conn.execute(
        "SELECT 1 FROM pg_namespace n,"
        " aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a"
        " WHERE n.nspname = %(schema)s AND a.privilege_type = 'CREATE'"
        " AND a.grantee = CASE WHEN %(grantee)s::text IS NULL THEN 0::oid"
        " ELSE (SELECT oid FROM pg_roles WHERE rolname = %(grantee)s) END",
        {"schema": schema, "grantee": grantee},
    ).fetchone()
    return row is not None


def create_grantees(conn: psycopg.Connection[Any], schema: str) -> list[str]:
    """The roles the schema's ACL grants CREATE to (PUBLIC is not a role here)."""
    rows = conn.execute(
        "SELECT DISTINCT r.rolname FROM pg_namespace n,"
        " aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a"
        " JOIN pg_roles r ON r.oid = a.grantee"
        " WHERE n.nspname = %s AND a.privilege_type = 'CREATE' ORDER BY r.rolname",
        (schema,),
    ).fetchall()
    return [r[0] for r in rows]


def has_role(conn: psycopg.Connection[Any], member: str, group: str) -> bool:
    """Whether `member` is a member of `group`, directly or not (SET ROLE can reach it)."""
    row = conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (member, group)).fetchone()
    return bool(row and row[0])


@dataclass(frozen=True)
class CreatePath:
    """How a managed role can create in a schema other than by a grant to itself or PUBLIC."""

    role: str
    group: str  # the role it is a member of; the role itself when it is the owner
    holder: str  # the group, or a role the group is a member of, that owns or holds CREATE
    owns: bool  # the holder owns the schema (else it was granted CREATE on it)

    def explain(self) -> str:
        """What a person reads after "through its membership in <group>"."""
        what = "owns the schema" if self.owns else "holds CREATE on it"
        if self.holder == self.group:
            return f"{self.group} {what}"
        return f"{self.group} is a member of {self.holder}, which {what}"


def create_paths(
    conn: psycopg.Connection[Any], role: str, schema: str, owner: str
) -> list[CreatePath]:
    """The memberships (and the ownership) through which `role` can create in `schema`.

    `owner` is the schema's owner once ``manage`` has run, which may not own it yet.
    Membership, not inheritance, counts: a member that does not inherit can still SET ROLE
    to the holder and create as it. One path per role it is a member of, since ending
    that membership is what a person would do.
    """
    if not role_exists(conn, role):
        return []
    # The current owner's own entries pass to `owner` with the schema.
    owners = {owner, schema_owner(conn, schema)}
    holders = [(owner, True)] + [
        (g, False) for g in create_grantees(conn, schema) if g not in owners
    ]
    groups = member_of(conn, role)
    paths: list[CreatePath] = []
    seen: set[str] = set()
    for holder, owns in holders:
        if holder == role:
            if owns:
                paths.append(CreatePath(role, role, role, owns=True))
            continue  # a grant to the role itself is a REVOKE step of its own
        if not role_exists(conn, holder) or not has_role(conn, role, holder):
            continue
        # An implicit membership (pg_database_owner's) has no row of its own.
        through = [g for g in groups if has_role(conn, g, holder)] or [holder]
        for group in through:
            if group not in seen:
                seen.add(group)
                paths.append(CreatePath(role, group, holder, owns))
    return paths


def default_privileges(
    conn: psycopg.Connection[Any], owner: str, schema: str, grantee: str, objtype: str
) -> set[str]:
    """Default privileges on what `owner` creates in `schema` (r: tables, S: sequences)."""
    rows = conn.execute(
        "SELECT a.privilege_type FROM pg_default_acl d"
        " JOIN pg_namespace n ON n.oid = d.defaclnamespace"
        " CROSS JOIN LATERAL aclexplode(d.defaclacl) a"
        " WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = %s)"
        " AND n.nspname = %s AND d.defaclobjtype = %s"
        " AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)",
        (owner, schema, objtype, grantee),
    ).fetchall()
    return {r[0] for r in rows}


def relations_lacking(
    conn: psycopg.Connection[Any], schema: str, role: str, kinds: str, privileges: tuple[str, ...]
) -> list[str]:
    """Relations of the schema (relkind in `kinds`) on which `role` lacks one of `privileges`."""
    function = "has_sequence_privilege" if kinds == "S" else "has_table_privilege"
    checks = sql.SQL(" AND ").join(
        sql.SQL("{}(%(role)s, c.oid, {})").format(sql.Identifier(function), sql.Literal(p))
        for p in privileges
    )
    query = sql.SQL(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %(schema)s AND c.relkind = ANY(%(kinds)s) AND NOT ({checks})"
        " ORDER BY c.relname"
    ).format(checks=checks)
    rows = conn.execute(query, {"role": role, "schema": schema, "kinds": list(kinds)}).fetchall()
    return [r[0] for r in rows]


def count_tables(conn: psycopg.Connection[Any], schema: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'p')",
        (schema,),
    ).fetchone()
    return int(row[0]) if row else 0


def password_login_works(config: Config, role: str, password: str) -> bool:
    """Whether the role can log in with this password (how we know it is already set)."""
    try:
        with psycopg.connect(
            host=config.host,
            port=config.port,
            dbname=config.dbname,
            user=role,
            password=password,
            sslmode=config.sslmode,
            connect_timeout=config.connect_timeout_s,
            application_name="opsbot-role-manager-check",
        ):
            return True
    except psycopg.OperationalError:
        return False


# --- what the function must not touch -----------------------------------------------------


def powers_of(conn: psycopg.Connection[Any], role: str, masters: frozenset[str]) -> list[str]:
    """What makes an existing role too powerful to take over; empty when it is not.

    Its power attributes, and the roles it is a member of, directly or through other
    roles, that the function refuses by name, that are the master user, or that have a
    power attribute themselves (a member may SET ROLE to it and use it); of those, the
    ones it reaches first (rds_superuser, not the pg_monitor that comes with it).
    """
    row = role_row(conn, role)
    if row is None:
        return []
    powers = [label for column, label in POWER_ATTRIBUTES if row[column]]
    groups = conn.execute(
        sql.SQL(
            "SELECT g.rolname, {} FROM pg_roles g, pg_roles r WHERE r.rolname = %s"
            " AND g.oid <> r.oid AND pg_has_role(r.oid, g.oid, 'MEMBER')"
        ).format(sql.SQL(", ").join(sql.Identifier("g", column) for column, _ in POWER_ATTRIBUTES)),
        (role,),
    ).fetchall()
    reasons: dict[str, str] = {}
    for group, *flags in groups:
        if group in HARMLESS_GROUPS:
            continue
        held = [label for (_, label), on in zip(POWER_ATTRIBUTES, flags, strict=True) if on]
        if role_name_refusal(group) is not None or group in masters:
            reasons[group] = f"membership in {group}"
        elif held:
            reasons[group] = f"membership in {group} ({' '.join(held)})"
    implied = conn.execute(
        "SELECT b.rolname FROM pg_roles a, pg_roles b WHERE a.rolname = ANY(%(groups)s)"
        " AND b.rolname = ANY(%(groups)s) AND a.oid <> b.oid"
        " AND pg_has_role(a.oid, b.oid, 'MEMBER')",
        {"groups": list(reasons)},
    ).fetchall()
    implied_names = {name for (name,) in implied}
    powers += [reasons[g] for g in sorted(reasons) if g not in implied_names]
    return powers


def refusals(
    conn: psycopg.Connection[Any], config: Config, masters: frozenset[str]
) -> list[Refusal]:
    """What the function must not touch in this database as configured; empty when none.

    `masters` are the master user's names (the secret's username, the session's user).
    Read-only: it runs before the first statement that changes anything.
    """
    found: list[Refusal] = []
    for key, role in (("MIGRATOR_ROLE", config.migrator), ("APP_ROLE", config.app)):
        if role in masters:
            found.append(
                Refusal(
                    key,
                    role,
                    "it is the master user (MASTER_SECRET_ARN's username): managing it would"
                    " take its CREATEROLE and CREATEDB and give it the app's login, locking"
                    " out everything that uses the master secret",
                )
            )
        elif powers := powers_of(conn, role, masters):
            found.append(
                Refusal(
                    key,
                    role,
                    f"already exists with {', '.join(powers)}: the role manager never takes"
                    " over a role more powerful than the ones it makes",
                )
            )
    owner = schema_owner(conn, config.schema)
    if owner is not None and owner not in masters | {config.migrator, config.app}:
        why = role_name_refusal(owner)
        powers = powers_of(conn, owner, masters)
        if why is not None or powers:
            found.append(
                Refusal(
                    "SCHEMA_NAME",
                    config.schema,
                    f"exists and belongs to {owner!r} ({why or ', '.join(powers)}): the role"
                    " manager never takes a schema from such a role",
                )
            )
    return found


# --- what manage would do ----------------------------------------------------------------


def plan(
    conn: psycopg.Connection[Any],
    config: Config,
    passwords: Mapping[str, str],
    report: Report,
) -> list[Step]:
    """Every statement needed to reach the wanted state; empty when the database is right."""
    ident = sql.Identifier
    schema, migrator, app = config.schema, config.migrator, config.app
    steps: list[Step] = []
    rds_iam_exists = role_exists(conn, RDS_IAM_ROLE)
    master = current_user(conn)

    for role in (migrator, app):
        row = role_row(conn, role)
        if row is None:
            wanted = " ".join(on if want else off for want, on, off in ROLE_ATTRIBUTES.values())
            steps.append(
                Step(
                    f"create role {role}",
                    sql.SQL("CREATE ROLE {} " + wanted).format(ident(role)),
                )
            )
        else:
            wrong = [
                on if want else off
                for column, (want, on, off) in ROLE_ATTRIBUTES.items()
                if row[column] != want
            ]
            if wrong:
                steps.append(
                    Step(
                        f"set {' '.join(wrong)} on role {role}",
                        sql.SQL("ALTER ROLE {} " + " ".join(wrong)).format(ident(role)),
                    )
                )
        exists = row is not None
        config_entries = row["rolconfig"] if row else []
        if f"search_path={schema}" not in config_entries:
            steps.append(
                Step(
                    f"set search_path of {role} to {schema}",
                    sql.SQL("ALTER ROLE {} SET search_path TO {}").format(
                        ident(role), ident(schema)
                    ),
                )
            )

        password = passwords.get(role)
        if password is not None:
            if exists and is_member(conn, role, RDS_IAM_ROLE):
                steps.append(
                    Step(
                        f"revoke {RDS_IAM_ROLE} from {role} (it logs in with a password,"
                        f" which RDS refuses to {RDS_IAM_ROLE} members)",
                        sql.SQL("REVOKE {} FROM {}").format(ident(RDS_IAM_ROLE), ident(role)),
                        still_needed=partial(is_member, member=role, group=RDS_IAM_ROLE),
                        kept=f"{role} is still a member of {RDS_IAM_ROLE} (since PostgreSQL 16"
                        " a membership is one per grantor, and one granted by another role"
                        " survives the master user's REVOKE), so its password login is refused",
                    )
                )
            if not (exists and password_login_works(config, role, password)):
                # Send libpq's SCRAM verifier, not the password: ALTER ROLE is DDL and the
                # cluster logs DDL statements.
                verifier = conn.pgconn.encrypt_password(
                    password.encode(), role.encode(), b"scram-sha-256"
                ).decode()
                steps.append(
                    Step(
                        f"set the password of {role} from its secret",
                        sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                            ident(role), sql.Literal(verifier)
                        ),
                    )
                )
        elif rds_iam_exists:
            if not (exists and is_member(conn, role, RDS_IAM_ROLE)):
                steps.append(
                    Step(
                        f"grant {RDS_IAM_ROLE} to {role} (IAM authentication)",
                        sql.SQL("GRANT {} TO {}").format(ident(RDS_IAM_ROLE), ident(role)),
                    )
                )
        else:
            report.warnings.append(
                f"role {RDS_IAM_ROLE} does not exist (not an RDS database?): {role} cannot log in"
                " with IAM authentication; everything else was granted"
            )

        if not (
            exists and has_privilege(conn, "has_database_privilege", role, config.dbname, "CONNECT")
        ):
            steps.append(
                Step(
                    f"grant CONNECT on database {config.dbname} to {role}",
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                        ident(config.dbname), ident(role)
                    ),
                )
            )

    # The master user must be a member of the migrator to hand it the schema and to set
    # default privileges for it (PostgreSQL requires membership for both).
    if not (role_exists(conn, migrator) and is_member(conn, master, migrator)):
        steps.append(
            Step(
                f"grant {migrator} to the master user {master} (to hand it the schema)",
                sql.SQL("GRANT {} TO {}").format(ident(migrator), ident(master)),
            )
        )

    owner = schema_owner(conn, schema)
    if owner is None:
        steps.append(
            Step(
                f"create schema {schema} owned by {migrator}",
                sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(ident(schema), ident(migrator)),
            )
        )
    elif owner != migrator:
        steps.append(
            Step(
                f"make {migrator} the owner of schema {schema} (was {owner})",
                sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(ident(schema), ident(migrator)),
            )
        )

    app_exists = role_exists(conn, app)
    schema_exists = owner is not None
    if not (
        app_exists
        and schema_exists
        and has_privilege(conn, "has_schema_privilege", app, schema, "USAGE")
    ):
        steps.append(
            Step(
                f"grant USAGE on schema {schema} to {app}",
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident(schema), ident(app)),
            )
        )
    # DML only: the app role must not create in its schema by any path. A REVOKE takes
    # away a grant to whom it names, so each path is repaired (or reported) where it is.
    if schema_exists and schema_grants_create(conn, schema, None):
        steps.append(
            Step(
                f"revoke CREATE on schema {schema} from PUBLIC (DML only: only its owner"
                f" {migrator} creates there)",
                sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(ident(schema)),
                still_needed=partial(schema_grants_create, schema=schema, grantee=None),
            )
        )
    # An app role that owns the schema hands its grants on with it, to the migrator.
    if app_exists and owner not in (None, app) and schema_grants_create(conn, schema, app):
        steps.append(
            Step(
                f"revoke CREATE on schema {schema} from {app} (DML only)",
                sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(ident(schema), ident(app)),
                still_needed=partial(schema_grants_create, schema=schema, grantee=app),
            )
        )
    for path in create_paths(conn, app, schema, migrator):
        needs_a_person(
            report,
            path,
            schema,
            f"needs a person: {app} can create in schema {schema} through its membership in"
            f" {path.group} ({path.explain()}), so it is not DML only. The role manager ends"
            " no membership (the app may run its migrations through it): end it once nothing"
            " needs it",
        )

    if app_exists:
        ddl_elsewhere(conn, config, report)

    for objtype, kind, privileges in (
        ("r", "TABLES", TABLE_PRIVILEGES),
        ("S", "SEQUENCES", SEQUENCE_PRIVILEGES),
    ):
        have = (
            default_privileges(conn, migrator, schema, app, objtype)
            if app_exists and schema_exists and role_exists(conn, migrator)
            else set()
        )
        if not set(privileges) <= have:
            steps.append(
                Step(
                    f"grant {', '.join(privileges)} on {kind.lower()} {migrator} creates in"
                    f" {schema} to {app} (default privileges)",
                    sql.SQL(
                        "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT "
                        + ", ".join(privileges)
                        + " ON "
                        + kind
                        + " TO {}"
                    ).format(ident(migrator), ident(schema), ident(app)),
                )
            )

    # Tables and sequences that exist already (default privileges only cover new ones).
    if app_exists and schema_exists:
        for kinds, kind, privileges in (
            ("rpv", "TABLES", TABLE_PRIVILEGES),
            ("S", "SEQUENCES", SEQUENCE_PRIVILEGES),
        ):
            lacking = relations_lacking(conn, schema, app, kinds, privileges)
            if lacking:
                steps.append(
                    Step(
                        f"grant {', '.join(privileges)} on existing {kind.lower()} of {schema}"
                        f" to {app} ({', '.join(lacking)})",
                        sql.SQL(
                            "GRANT "
                            + ", ".join(privileges)
                            + " ON ALL "
                            + kind
                            + " IN SCHEMA {} TO {}"
                        ).format(ident(schema), ident(app)),
                    )
                )

    if schema_grants_create(conn, "public", None):
        steps.append(
            Step(
                "revoke CREATE on schema public from PUBLIC",
                sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"),
                still_needed=partial(schema_grants_create, schema="public", grantee=None),
            )
        )
    # A grant to the role itself survives the revoke from PUBLIC: tables belong in the
    # app's schema, where the migrator owns them.
    public_owner = schema_owner(conn, "public")
    for role in (migrator, app):
        if role_exists(conn, role) and schema_grants_create(conn, "public", role):
            steps.append(
                Step(
                    f"revoke CREATE on schema public from {role}",
                    sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(ident(role)),
                    still_needed=partial(schema_grants_create, schema="public", grantee=role),
                )
            )
        # Other roles share public: their grants and memberships are a person's to change.
        for path in create_paths(conn, role, "public", public_owner) if public_owner else []:
            how = (
                "it owns it: make another role its owner"
                if path.group == role
                else f"through its membership in {path.group} ({path.explain()}): end the"
                f" membership, or revoke CREATE on public from {path.holder}"
            )
            needs_a_person(
                report,
                path,
                "public",
                f"needs a person: {role} can create in schema public, {how}. Tables belong in"
                f" schema {schema}; the role manager changes neither memberships nor other"
                " roles' grants on public",
            )
    return steps


def ddl_elsewhere(conn: psycopg.Connection[Any], config: Config, report: Report) -> None:
    """Report the app role's DDL other than CREATE on its schema or on public: errors in both
    actions that a person resolves (manage changes no owner and no other grant).

    CREATE on the database lets it make schemas; CREATE on another schema, tables there;
    owning a relation of the managed schema (or being a member of its owner), altering
    and dropping it. A relation there that the migrator does not own is one its migrations
    cannot alter either.
    """
    schema, migrator, app = config.schema, config.migrator, config.app
    if has_privilege(conn, "has_database_privilege", app, config.dbname, "CREATE"):
        not_dml_only(
            report,
            app,
            f"database {config.dbname}",
            f"needs a person: {app} holds CREATE on database {config.dbname} (it can create"
            " schemas, and tables in them), so it is not DML only: revoke it from the role"
            " (or group, or PUBLIC) that holds it",
        )
    others = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname <> ALL(%s)"
        " AND has_schema_privilege(%s, oid, 'CREATE') ORDER BY nspname",
        ([schema, "public"], app),
    ).fetchall()
    for (other,) in others:
        not_dml_only(
            report,
            app,
            f"schema {other}",
            f"needs a person: {app} can create in schema {other}, so it is not DML only:"
            f" revoke CREATE on it from {app} (or from the group or PUBLIC it holds it"
            " through), or make another role the schema's owner",
        )
    owned = conn.execute(
        "SELECT pg_get_userbyid(c.relowner), array_agg(c.relname ORDER BY c.relname)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind NOT IN ('i', 'I')"
        " AND pg_get_userbyid(c.relowner) <> %s GROUP BY 1 ORDER BY 1",
        (schema, migrator),
    ).fetchall()
    for owner, names in owned:
        listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        why = (
            f"so {app} can alter and drop them: it is not DML only"
            if has_role(conn, app, owner)
            else f"so {migrator}'s migrations cannot alter them"
        )
        not_dml_only(
            report,
            owner,
            f"relations of schema {schema}",
            f"needs a person: {owner} owns relations of schema {schema} ({listed}), not"
            f" {migrator}, {why}: make {migrator} their owner (ALTER TABLE ... OWNER TO"
            f" {migrator})",
        )


def not_dml_only(report: Report, role: str, where: str, message: str) -> None:
    """Report DDL that manage does not repair: an error in both actions, logged."""
    fields = {
        "event": "role_manager.ddl_elsewhere",
        "action": report.action,
        "role": role,
        "where": where,
    }
    log.warning("role manager needs a person: %s", json.dumps(fields), extra=fields)
    report.errors.append(message)


def needs_a_person(report: Report, path: CreatePath, schema: str, message: str) -> None:
    """Report a path to CREATE that manage does not repair: an error in both actions, logged."""
    fields = {
        "event": "role_manager.create_through_membership",
        "action": report.action,
        "role": path.role,
        "schema": schema,
        "group": path.group,
        "holder": path.holder,
    }
    log.warning("role manager needs a person: %s", json.dumps(fields), extra=fields)
    report.errors.append(message)


# --- the report --------------------------------------------------------------------------


def describe(conn: psycopg.Connection[Any], config: Config, report: Report) -> None:
    """Fill the roles, schema and tables parts of the report (read-only)."""
    schema, migrator, app = config.schema, config.migrator, config.app
    owner = schema_owner(conn, schema)
    report.schema = {"name": schema, "exists": owner is not None, "owner": owner}

    for role in (migrator, app):
        row = role_row(conn, role)
        if row is None:
            report.roles.append(
                {"name": role, "exists": False, "attributes": [], "grants": [], "member_of": []}
            )
            continue
        attributes = [on if row[c] else off for c, (_, on, off) in ROLE_ATTRIBUTES.items()]
        attributes += [f"SET {entry}" for entry in row["rolconfig"]]
        if config.password_secret_of(role):
            attributes.append("PASSWORD (from its secret)")
        grants: list[str] = []
        if has_privilege(conn, "has_database_privilege", role, config.dbname, "CONNECT"):
            grants.append(f"CONNECT on database {config.dbname}")
        if has_privilege(conn, "has_database_privilege", role, config.dbname, "CREATE"):
            grants.append(f"CREATE on database {config.dbname}")
        if owner is not None:
            if owner == role:
                grants.append(f"owner of schema {schema}")
            schema_privs = [
                p
                for p in ("USAGE", "CREATE")
                if has_privilege(conn, "has_schema_privilege", role, schema, p)
            ]
            if schema_privs:
                grants.append(f"{', '.join(schema_privs)} on schema {schema}")
        if schema_owner(conn, "public") is not None and has_privilege(
            conn, "has_schema_privilege", role, "public", "CREATE"
        ):
            grants.append("CREATE on schema public")
        if role == app and role_exists(conn, migrator):
            for objtype, kind in (("r", "tables"), ("S", "sequences")):
                privs = default_privileges(conn, migrator, schema, app, objtype)
                if privs:
                    listed = ", ".join(sorted(privs))
                    grants.append(f"{listed} on {kind} {migrator} creates in {schema} (default)")
        report.roles.append(
            {
                "name": role,
                "exists": True,
                "attributes": attributes,
                "grants": grants,
                "member_of": member_of(conn, role),
            }
        )

    if owner is None or not role_exists(conn, app):
        report.tables_reachable = False
        report.tables = {"count": 0, "unreachable": []}
        return
    unreachable = relations_lacking(conn, schema, app, "rpv", TABLE_PRIVILEGES)
    unreachable += relations_lacking(conn, schema, app, "S", SEQUENCE_PRIVILEGES)
    report.tables = {"count": count_tables(conn, schema), "unreachable": unreachable}
    report.tables_reachable = not unreachable


# --- entry point -------------------------------------------------------------------------


def connect_master(config: Config, secret: Mapping[str, Any]) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=config.host,
        port=config.port,
        dbname=config.dbname,
        user=secret["username"],
        password=secret["password"],
        sslmode=config.sslmode,
        connect_timeout=config.connect_timeout_s,
        application_name="opsbot-role-manager",
    )


# Opens the master user's session: connect_master, or in tests one that fails on cue.
Connect = Callable[[Config, Mapping[str, Any]], psycopg.Connection[Any]]


def run(report: Report, config: Config, connect: Connect = connect_master) -> None:
    """Do the report's action against the configured database and describe the result.

    The report is filled as the run goes, so a failure after manage's commit still has
    what was changed.
    """
    action = report.action
    passwords: dict[str, str] = {}
    for role in (config.migrator, config.app):
        arn = config.password_secret_of(role)
        if arn:
            passwords[role] = str(read_secret(arn)["password"])

    master_secret = read_secret(config.master_secret_arn)
    with connect(config, master_secret) as conn:
        if action == "check":
            conn.read_only = True  # proof that check changes nothing
        # Checked in the transaction that makes the changes, before its first change;
        # raising leaves the connection's block, which rolls the transaction back.
        masters = frozenset({str(master_secret["username"]), session_user(conn)})
        refused = refusals(conn, config, masters)
        if refused:
            raise Refused(refused)
        steps = plan(conn, config, passwords, report)
        if action == "manage":
            for step in steps:
                log.info("role manager: %s", step.description)
                conn.execute(step.statement)
                if step.still_needed is not None and step.still_needed(conn):
                    no_effect(report, step)
                else:
                    report.changed.append(step.description)
            conn.commit()
            report.committed = True
        else:
            report.errors += [f"needs repair: {step.description}" for step in steps]
            conn.rollback()
        describe(conn, config, report)
        conn.rollback()

    if action == "manage" and not report.tables_reachable:
        report.errors.append(
            f"{config.app} still cannot reach: {', '.join(report.tables.get('unreachable', []))}"
        )


def no_effect(report: Report, step: Step) -> None:
    """Report a statement that ran and changed nothing: an error, never a change."""
    fields = {"event": "role_manager.no_effect", "action": report.action, "step": step.description}
    log.warning("role manager step had no effect: %s", json.dumps(fields), extra=fields)
    report.errors.append(
        f"no effect: {step.description}: it ran and {step.kept}; it needs a person"
    )


def refusal_result(action: str, refused: Refused) -> dict[str, Any]:
    """The result of a refused run, each refusal logged once."""
    report = Report(action=action)
    for refusal in refused.refusals:
        refusal.log(action)
    report.refuse(refused.refusals)
    return report.as_dict()


def database_error(exc: psycopg.Error) -> str:
    """A database error as a person reads it: its class and SQLSTATE, not its message.

    libpq's messages name the server (``connection to server at "10.0.3.7", port 5432
    failed``), and the bot shows the error to anyone who runs a check; `failed` logs it.
    """
    sqlstate = f", SQLSTATE {exc.sqlstate}" if exc.sqlstate else ""
    return f"database error ({type(exc).__name__}{sqlstate}): its message is in the function's log"


# What the function was doing when AWS answered an error, by the API operation.
AWS_OPERATIONS = {"GetSecretValue": "reading a secret"}


def other_error(exc: Exception) -> str:
    """A failure other than the database's as a person reads it: not its message.

    AWS's messages name the account, the function's assumed role and the resource
    (``User: arn:aws:sts::...:assumed-role/... is not authorized to perform:
    secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:...``), and the
    bot shows the error to anyone who runs a check; `failed` logs it.
    """
    logged = ": its message is in the function's log"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code") or "no error code"
        operation = str(exc.operation_name or "an AWS API")
        doing = AWS_OPERATIONS.get(operation, f"calling {operation}")
        return f"AWS error ({code}) {doing}{logged}"
    if isinstance(exc, BotoCoreError):
        return f"AWS error ({type(exc).__name__}){logged}"
    return f"error ({type(exc).__name__}){logged}"


def failed(report: Report, config: Config, exc: Exception, error: str) -> Report:
    """The report of a run that raised `exc` (said as `error`), logged with the whole exception.

    Before manage's commit the transaction rolled back: nothing was changed, and what the
    run found goes with it, so the result says it did not run. After the commit the
    changes stand: the report keeps them, its errors and warnings, and drops the roles'
    description, which the failure may have cut short.
    """
    fields = {
        "event": "role_manager.failed",
        "action": report.action,
        "database": config.dbname,
        "committed": report.committed,
        "changed": len(report.changed),
        "error_type": type(exc).__name__,
        "sqlstate": getattr(exc, "sqlstate", None),
        "aws_error_code": (
            exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
        ),
    }
    log.error("role manager failed: %s", json.dumps(fields), extra=fields, exc_info=exc)
    if not report.committed:
        result = Report(action=report.action, ran=False)
        result.errors.append(error)
        return result
    result = Report(
        action=report.action,
        changed=report.changed,
        warnings=report.warnings,
        errors=report.errors,
        committed=True,
    )
    result.errors.append(
        "failed after the commit, so what was changed stands, but the roles could not be"
        f" described (run check to see them): {error}"
    )
    return result


def handler(
    event: Mapping[str, Any] | None, context: object = None, *, connect: Connect = connect_master
) -> dict[str, Any]:
    """Lambda entry point: {"action": "manage" | "check"} -> the JSON report.

    `connect` opens the master user's session; Lambda passes none, so it is connect_master.
    """
    action = str((event or {}).get("action", ""))
    if action not in ACTIONS:
        report = Report(action=action, ran=False)
        report.errors.append(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
        return report.as_dict()
    try:
        config = Config.from_env(os.environ)
    except Refused as exc:
        return refusal_result(action, exc)
    except ConfigError as exc:
        report = Report(action=action, ran=False)
        report.errors.append(f"invalid configuration, nothing was run: {exc}")
        return report.as_dict()
    report = Report(action=action)
    try:
        run(report, config, connect)
    except Refused as exc:
        return refusal_result(action, exc)
    except psycopg.Error as exc:
        report = failed(report, config, exc, database_error(exc))
    except Exception as exc:  # the caller renders the error; never leak a stack as a 500
        report = failed(report, config, exc, other_error(exc))
    result = report.as_dict()
    log.info("role manager result: %s", json.dumps(result))
    return result
