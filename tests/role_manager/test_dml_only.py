"""The app role stays DML only, whichever way CREATE reaches it, and no REVOKE is a no-op change.

``has_schema_privilege`` counts grants to PUBLIC and to the roles a role is a member of;
``REVOKE ... FROM app`` takes away only a grant to the app role itself, made by the
revoker. Each test below reaches the app role's CREATE another way, on a real
PostgreSQL, and looks at the catalog, not at the function's words.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import role_manager  # from infra/lambda/role_manager, put on sys.path by conftest.py
from psycopg import sql

if TYPE_CHECKING:
    from conftest import RmDatabase

ident = sql.Identifier


def invoke(action: str) -> dict[str, Any]:
    result = role_manager.handler({"action": action}, None)
    json.dumps(result)  # the bot receives it as JSON
    return result


def can_create(db: RmDatabase, role: str, schema: str) -> bool:
    with db.connect() as conn:
        row = conn.execute("SELECT has_schema_privilege(%s, %s, 'CREATE')", (role, schema))
        return bool(row.fetchone() == (True,))


def memberships(db: RmDatabase, role: str) -> list[str]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT roleid::regrole::text FROM pg_auth_members"
            " WHERE member::regrole::text = %s ORDER BY 1",
            (role,),
        ).fetchall()
    return [r[0] for r in rows]


def schema_acl(db: RmDatabase, schema: str) -> str | None:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT nspacl::text FROM pg_namespace WHERE nspname = %s", (schema,)
        ).fetchone()
    return None if row is None else row[0]


@pytest.fixture
def rm_group(rm_database: RmDatabase, rm_superuser_url: str) -> Iterator[str]:
    """A NOLOGIN role of the test's own; its grants in the database go with it after."""
    name = f"rm_{uuid.uuid4().hex[:10]}_group"
    with psycopg.connect(rm_database.admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident(name)))
    try:
        yield name
    finally:
        info = psycopg.conninfo.conninfo_to_dict(rm_superuser_url)
        info["dbname"] = rm_database.dbname
        with psycopg.connect(psycopg.conninfo.make_conninfo(**info), autocommit=True) as su:
            su.execute(sql.SQL("DROP OWNED BY {}").format(ident(name)))
            su.execute(sql.SQL("DROP ROLE {}").format(ident(name)))


def test_create_granted_to_public_on_the_app_schema_is_revoked_from_public(
    rm_env: dict[str, str], rm_database: RmDatabase
) -> None:
    assert invoke("manage")["ok"]
    schema, app = rm_database.schema, rm_database.app
    with rm_database.connect() as conn:
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA {} TO PUBLIC").format(ident(schema)))
    assert can_create(rm_database, app, schema)
    step = (
        f"revoke CREATE on schema {schema} from PUBLIC (DML only: only its owner"
        f" {rm_database.migrator} creates there)"
    )

    drift = invoke("check")
    assert drift["ok"] is False
    assert drift["errors"] == [f"needs repair: {step}"]

    result = invoke("manage")

    assert result["ok"], result["errors"]
    assert result["changed"] == [step]
    assert not can_create(rm_database, app, schema)
    grants = next(r["grants"] for r in result["roles"] if r["name"] == app)
    assert f"USAGE on schema {schema}" in grants
    assert invoke("manage")["changed"] == []
    assert invoke("check")["ok"]


def test_an_app_role_in_the_migrator_is_left_to_a_person_and_nothing_is_claimed(
    rm_env: dict[str, str], rm_database: RmDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    assert invoke("manage")["ok"]
    schema, migrator, app = rm_database.schema, rm_database.migrator, rm_database.app
    with rm_database.connect() as conn:  # the app runs its own migrations
        conn.execute(sql.SQL("GRANT {} TO {}").format(ident(migrator), ident(app)))
    acl_before = schema_acl(rm_database, schema)
    problem = (
        f"needs a person: {app} can create in schema {schema} through its membership in"
        f" {migrator} ({migrator} owns the schema), so it is not DML only."
    )

    checked = invoke("check")
    assert checked["ok"] is False
    [error] = checked["errors"]
    assert error.startswith(problem)

    for _ in range(2):  # the same answer every run: nothing claimed, nothing changed
        caplog.clear()
        result = invoke("manage")

        assert result["ok"] is False
        assert result["changed"] == []
        assert result["summary"] == "manage: 1 error(s)"
        assert result["errors"] == [error]
        [record] = [
            r
            for r in caplog.records
            if getattr(r, "event", None) == "role_manager.create_through_membership"
        ]
        assert record.levelno == logging.WARNING
        assert json.loads(record.getMessage().split(": ", 1)[1]) == {
            "event": "role_manager.create_through_membership",
            "action": "manage",
            "role": app,
            "schema": schema,
            "group": migrator,
            "holder": migrator,
        }
    assert migrator in memberships(rm_database, app)  # a person's to end
    assert schema_acl(rm_database, schema) == acl_before


def test_a_membership_through_another_role_is_named(
    rm_env: dict[str, str], rm_database: RmDatabase, rm_group: str
) -> None:
    assert invoke("manage")["ok"]
    schema, migrator, app = rm_database.schema, rm_database.migrator, rm_database.app
    with rm_database.connect() as conn:
        conn.execute(sql.SQL("GRANT {} TO {}").format(ident(migrator), ident(rm_group)))
        conn.execute(sql.SQL("GRANT {} TO {}").format(ident(rm_group), ident(app)))

    result = invoke("manage")

    assert result["changed"] == []
    [error] = result["errors"]
    assert error.startswith(
        f"needs a person: {app} can create in schema {schema} through its membership in"
        f" {rm_group} ({rm_group} is a member of {migrator}, which owns the schema)"
    )


def test_a_revoke_that_leaves_the_grant_is_an_error_not_a_change(
    rm_env: dict[str, str], rm_database: RmDatabase, rm_group: str, rm_superuser_url: str
) -> None:
    assert invoke("manage")["ok"]
    schema, app = rm_database.schema, rm_database.app
    # CREATE granted to the app role by another role than the schema's owner: the master
    # user's REVOKE, made as the owner, cannot take it away.
    with rm_database.connect() as conn:  # a member of the migrator, the owner
        conn.execute(
            sql.SQL("GRANT CREATE ON SCHEMA {} TO {} WITH GRANT OPTION").format(
                ident(schema), ident(rm_group)
            )
        )
    info = psycopg.conninfo.conninfo_to_dict(rm_superuser_url)
    info["dbname"] = rm_database.dbname
    with psycopg.connect(psycopg.conninfo.make_conninfo(**info), autocommit=True) as su:
        su.execute(sql.SQL("SET ROLE {}").format(ident(rm_group)))
        su.execute(sql.SQL("GRANT CREATE ON SCHEMA {} TO {}").format(ident(schema), ident(app)))
    step = f"revoke CREATE on schema {schema} from {app} (DML only)"
    assert invoke("check")["errors"] == [f"needs repair: {step}"]

    result = invoke("manage")

    assert result["ok"] is False
    assert result["changed"] == []
    [error] = result["errors"]
    assert error.startswith(f"no effect: {step}: it ran and the grant is still there")
    assert can_create(rm_database, app, schema)  # what the error says


def test_create_on_public_through_a_group_is_not_reported_clean(
    rm_env: dict[str, str], rm_database: RmDatabase, rm_group: str
) -> None:
    assert invoke("manage")["ok"]
    app = rm_database.app
    with rm_database.connect() as conn:
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(ident(rm_group)))
        conn.execute(sql.SQL("GRANT {} TO {}").format(ident(rm_group), ident(app)))
    acl_before = schema_acl(rm_database, "public")

    checked = invoke("check")

    assert "CREATE on schema public" in next(
        r["grants"] for r in checked["roles"] if r["name"] == app
    )
    assert checked["ok"] is False
    [error] = checked["errors"]
    assert error.startswith(
        f"needs a person: {app} can create in schema public, through its membership in"
        f" {rm_group} ({rm_group} holds CREATE on it): end the membership, or revoke CREATE"
        f" on public from {rm_group}."
    )
    # manage leaves the shared schema's other grants and the membership to a person.
    result = invoke("manage")
    assert (result["changed"], result["errors"]) == ([], [error])
    assert schema_acl(rm_database, "public") == acl_before
    assert rm_group in memberships(rm_database, app)


OTHER_SCHEMA = "other_{schema}"


@pytest.mark.parametrize(
    ("setup", "where", "error"),
    [
        (
            ["GRANT CREATE ON DATABASE {dbname} TO {app}"],
            "database {dbname}",
            "needs a person: {app} holds CREATE on database {dbname} (it can create schemas,"
            " and tables in them), so it is not DML only",
        ),
        (
            ["CREATE SCHEMA {other}", "GRANT USAGE, CREATE ON SCHEMA {other} TO {app}"],
            "schema {other}",
            "needs a person: {app} can create in schema {other}, so it is not DML only",
        ),
        (
            ["CREATE TABLE {schema}.mine (id int)", "ALTER TABLE {schema}.mine OWNER TO {app}"],
            "relations of schema {schema}",
            "needs a person: {app} owns relations of schema {schema} (mine), not {migrator},"
            " so {app} can alter and drop them: it is not DML only",
        ),
    ],
)
def test_ddl_of_the_app_role_outside_its_schema_is_left_to_a_person_and_not_ok(
    rm_env: dict[str, str],
    rm_database: RmDatabase,
    rm_superuser_url: str,
    caplog: pytest.LogCaptureFixture,
    setup: list[str],
    where: str,
    error: str,
) -> None:
    # Seen: after a clean manage, each of these left check saying "DML only" and ok.
    assert invoke("manage")["ok"]
    db = rm_database
    names = {
        "dbname": db.dbname,
        "app": db.app,
        "migrator": db.migrator,
        "schema": db.schema,
        "other": OTHER_SCHEMA.format(schema=db.schema),
    }
    info = psycopg.conninfo.conninfo_to_dict(rm_superuser_url)
    info["dbname"] = db.dbname
    with psycopg.connect(psycopg.conninfo.make_conninfo(**info), autocommit=True) as su:
        for statement in setup:
            su.execute(sql.SQL(statement).format(**{k: ident(v) for k, v in names.items()}))
    said = error.format(**names)

    checked = invoke("check")
    result = invoke("manage")

    for run in (checked, result):
        assert run["ok"] is False
        [found] = run["errors"]
        assert found.startswith(said)
    assert result["changed"] == []  # no owner and no other grant is changed
    if setup[0].startswith("GRANT CREATE ON DATABASE"):
        grants = next(r["grants"] for r in checked["roles"] if r["name"] == db.app)
        assert f"CREATE on database {db.dbname}" in grants
    logged = [
        r for r in caplog.records if getattr(r, "event", None) == "role_manager.ddl_elsewhere"
    ]
    assert [(r.action, r.where) for r in logged] == [  # type: ignore[attr-defined]
        ("check", where.format(**names)),
        ("manage", where.format(**names)),
    ]
