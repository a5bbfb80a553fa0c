"""The role-manager Lambda against a real PostgreSQL, with Secrets Manager on moto."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import role_manager  # from infra/lambda/role_manager, put on sys.path by conftest.py
from psycopg import errors, sql

if TYPE_CHECKING:
    from conftest import RmDatabase


def invoke(action: str) -> dict[str, Any]:
    result = role_manager.handler({"action": action}, None)
    json.dumps(result)  # the bot receives it as JSON
    return result


def role(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in result["roles"] if r["name"] == name)


def catalog_snapshot(db: RmDatabase) -> list[Any]:
    """Everything manage could change: roles, memberships, schemas, ACLs, default ACLs."""
    with db.connect() as conn:
        return [
            conn.execute(
                "SELECT rolname, rolcanlogin, rolinherit, rolcreatedb, rolcreaterole, rolconfig"
                " FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname",
                ([db.migrator, db.app, db.user],),
            ).fetchall(),
            # Memberships are cluster-wide, and other tests (other checkouts too) change
            # theirs meanwhile: only this test's roles count.
            conn.execute(
                "SELECT roleid::regrole::text, member::regrole::text FROM pg_auth_members"
                " WHERE roleid::regrole::text = ANY(%(ours)s)"
                " OR member::regrole::text = ANY(%(ours)s) ORDER BY 1, 2",
                {"ours": [db.migrator, db.app]},
            ).fetchall(),
            conn.execute(
                "SELECT nspname, nspowner::regrole::text, nspacl::text FROM pg_namespace ORDER BY 1"
            ).fetchall(),
            conn.execute("SELECT defaclacl::text FROM pg_default_acl ORDER BY 1").fetchall(),
            conn.execute(
                "SELECT datacl::text FROM pg_database WHERE datname = %s", (db.dbname,)
            ).fetchall(),
        ]


def test_manage_creates_the_schema_and_both_roles(
    rm_env: dict[str, str], rm_database: RmDatabase, rm_rds_iam_exists: bool
) -> None:
    result = invoke("manage")

    assert result["ok"], result["errors"]
    assert result["action"] == "manage"
    assert f"create role {rm_database.migrator}" in result["changed"]
    assert f"create role {rm_database.app}" in result["changed"]
    assert result["schema"] == {
        "name": rm_database.schema,
        "exists": True,
        "owner": rm_database.migrator,
    }
    for name in (rm_database.migrator, rm_database.app):
        attributes = role(result, name)["attributes"]
        assert "LOGIN" in attributes
        assert {"NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "NOBYPASSRLS"} <= set(attributes)
        assert f"SET search_path={rm_database.schema}" in attributes
    assert f"owner of schema {rm_database.schema}" in role(result, rm_database.migrator)["grants"]
    assert f"USAGE on schema {rm_database.schema}" in role(result, rm_database.app)["grants"]
    assert result["tables_reachable"] is True
    if not rm_rds_iam_exists:
        # plain PostgreSQL: no rds_iam role; said so, everything else granted
        assert any("rds_iam does not exist" in w for w in result["warnings"])
        assert role(result, rm_database.app)["member_of"] == []


def test_second_manage_changes_nothing(rm_env: dict[str, str], rm_database: RmDatabase) -> None:
    first = invoke("manage")
    assert first["ok"] and first["changed"]
    before = catalog_snapshot(rm_database)

    second = invoke("manage")

    assert second["ok"], second["errors"]
    assert second["changed"] == []
    assert second["summary"] == "manage: nothing to change, everything was in order"
    assert first["summary"] == f"manage: {len(first['changed'])} change(s) made"
    assert catalog_snapshot(rm_database) == before
    assert second["roles"] == first["roles"]


def test_check_after_manage_is_clean(rm_env: dict[str, str], rm_database: RmDatabase) -> None:
    invoke("manage")

    result = invoke("check")

    assert result["ok"] is True
    assert result["errors"] == []
    assert result["changed"] == []
    assert result["tables_reachable"] is True
    assert {r["name"] for r in result["roles"]} == {rm_database.migrator, rm_database.app}


def test_check_changes_nothing_and_reports_what_manage_would_do(
    rm_env: dict[str, str], rm_database: RmDatabase
) -> None:
    before = catalog_snapshot(rm_database)

    result = invoke("check")

    assert catalog_snapshot(rm_database) == before
    assert result["ok"] is False
    assert result["changed"] == []
    assert f"needs repair: create role {rm_database.app}" in result["errors"]
    assert (
        f"needs repair: create schema {rm_database.schema} owned by {rm_database.migrator}"
        in (result["errors"])
    )
    assert role(result, rm_database.app)["exists"] is False
    assert result["schema"]["exists"] is False


def test_table_created_by_migrator_is_usable_by_app_but_not_alterable(
    rm_env: dict[str, str], rm_database: RmDatabase, rm_passwords: dict[str, str]
) -> None:
    result = invoke("manage")
    assert result["ok"], result["errors"]
    migrator, app = rm_database.migrator, rm_database.app

    # The migrator logs in (password mode) and creates a table: search_path puts it in
    # the schema without naming it.
    with psycopg.connect(
        rm_database.url(migrator, rm_passwords[migrator]), autocommit=True
    ) as conn:
        conn.execute("CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL)")
        row = conn.execute(
            "SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = 'items'::regclass"
        ).fetchone()
        assert row == (rm_database.schema,)

    with psycopg.connect(rm_database.url(app, rm_passwords[app]), autocommit=True) as conn:
        conn.execute("INSERT INTO items (name) VALUES ('a'), ('b')")
        conn.execute("UPDATE items SET name = 'c' WHERE name = 'b'")
        conn.execute("DELETE FROM items WHERE name = 'a'")
        assert conn.execute("SELECT name FROM items").fetchall() == [("c",)]
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("ALTER TABLE items ADD COLUMN extra int")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("DROP TABLE items")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE mine (id int)")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE public.mine (id int)")

    checked = invoke("check")
    assert checked["ok"], checked["errors"]
    assert checked["tables"] == {"count": 1, "unreachable": []}


def test_manage_revokes_create_on_public(rm_env: dict[str, str], rm_database: RmDatabase) -> None:
    with rm_database.connect() as conn:  # the database owner owns public on PostgreSQL 15
        conn.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")

    result = invoke("manage")

    assert "revoke CREATE on schema public from PUBLIC" in result["changed"]
    with rm_database.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_namespace n, aclexplode(n.nspacl) a"
            " WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'CREATE'"
        ).fetchone()
    assert row == (0,)


def test_create_on_public_granted_to_a_role_itself_is_revoked(
    rm_env: dict[str, str], rm_database: RmDatabase
) -> None:
    invoke("manage")
    ident = sql.Identifier
    with rm_database.connect() as conn:
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(ident(rm_database.app)))
    drift = invoke("check")
    assert (
        f"needs repair: revoke CREATE on schema public from {rm_database.app}" in (drift["errors"])
    )
    assert "CREATE on schema public" in role(drift, rm_database.app)["grants"]

    result = invoke("manage")

    assert result["changed"] == [f"revoke CREATE on schema public from {rm_database.app}"]
    assert "CREATE on schema public" not in role(result, rm_database.app)["grants"]
    with rm_database.connect() as conn:
        row = conn.execute(
            "SELECT has_schema_privilege(%s, 'public', 'CREATE')", (rm_database.app,)
        ).fetchone()
    assert row == (False,)
    assert invoke("check")["ok"]


def test_manage_repairs_drift_and_check_names_it(
    rm_env: dict[str, str], rm_database: RmDatabase
) -> None:
    invoke("manage")
    ident = sql.Identifier
    with rm_database.connect() as conn:
        conn.execute(
            sql.SQL("REVOKE USAGE ON SCHEMA {} FROM {}").format(
                ident(rm_database.schema), ident(rm_database.app)
            )
        )
        conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(ident(rm_database.app)))

    drift = invoke("check")
    assert drift["ok"] is False
    assert f"needs repair: set LOGIN on role {rm_database.app}" in drift["errors"]
    assert (
        f"needs repair: grant USAGE on schema {rm_database.schema} to {rm_database.app}"
        in (drift["errors"])
    )

    repaired = invoke("manage")
    assert repaired["changed"] == [e.removeprefix("needs repair: ") for e in drift["errors"]]
    assert invoke("check")["ok"]


def test_existing_tables_are_granted_to_app(
    rm_env: dict[str, str], rm_database: RmDatabase
) -> None:
    invoke("manage")
    ident = sql.Identifier
    # A table the default privileges never saw: created by the master user directly.
    with rm_database.connect() as conn:
        conn.execute(sql.SQL("CREATE TABLE {}.legacy (id int)").format(ident(rm_database.schema)))
    assert invoke("check")["tables"]["unreachable"] == ["legacy"]

    result = invoke("manage")

    assert any("on existing tables" in c and "legacy" in c for c in result["changed"])
    assert result["tables_reachable"] is True


INVALID = "invalid configuration, nothing was run: "
RESERVED = "refused, nothing was changed: "


@pytest.mark.parametrize(
    ("variable", "value", "prefix"),
    [
        ("APP_ROLE", 'app"; DROP ROLE postgres; --', INVALID),
        ("APP_ROLE", "app;drop", INVALID),
        ("MIGRATOR_ROLE", "Migrator", INVALID),
        ("SCHEMA_NAME", "1schema", INVALID),
        ("SCHEMA_NAME", "x" * 64, INVALID),
        ("MIGRATOR_ROLE", "it's", INVALID),
        ("SCHEMA_NAME", "public", RESERVED),
        ("SCHEMA_NAME", "pg_catalog", RESERVED),
        ("APP_ROLE", "pg_signal_backend", RESERVED),
        ("MIGRATOR_ROLE", "rds_superuser", RESERVED),
        ("APP_ROLE", "postgres", RESERVED),
    ],
)
def test_bad_and_reserved_names_are_refused_before_anything_runs(
    rm_env: dict[str, str],
    rm_database: RmDatabase,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    prefix: str,
) -> None:
    monkeypatch.setenv(variable, value)
    # If the function got as far as AWS or the database, these would show up as errors.
    monkeypatch.setenv(
        "MASTER_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing"
    )
    monkeypatch.setenv("DB_PORT", "1")

    result = invoke("manage")

    assert result["ok"] is False
    assert result["refused"] is (prefix == RESERVED)
    assert result["changed"] == []
    [error] = result["errors"]
    assert error.startswith(prefix)
    assert f"{variable}={value!r}" in error
    with rm_database.connect() as conn:
        rows = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
            ([rm_database.migrator, rm_database.app],),
        ).fetchall()
    assert rows == []


def test_unknown_action_is_refused(rm_env: dict[str, str]) -> None:
    result = role_manager.handler({"action": "drop"}, None)
    assert result["ok"] is False
    assert "unknown action 'drop'" in result["errors"][0]


def test_rds_iam_is_granted_when_it_exists(
    rm_env: dict[str, str], rm_database: RmDatabase, rm_with_rds_iam: None
) -> None:
    result = invoke("manage")

    assert result["ok"], result["errors"]
    assert not any("rds_iam" in w for w in result["warnings"])
    for name in (rm_database.migrator, rm_database.app):
        assert f"grant rds_iam to {name} (IAM authentication)" in result["changed"]
        assert "rds_iam" in role(result, name)["member_of"]
    assert invoke("manage")["changed"] == []
    assert invoke("check")["ok"]


def test_password_roles_do_not_keep_rds_iam(
    rm_env: dict[str, str],
    rm_database: RmDatabase,
    rm_with_rds_iam: None,
    rm_aws: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invoke("manage")  # IAM mode first: both roles join rds_iam
    secret = rm_aws.create_secret(
        Name=f"{rm_database.dbname}/late-password",
        SecretString=json.dumps({"password": "s3cretpassw0rd"}),
    )
    monkeypatch.setenv("APP_PASSWORD_SECRET_ARN", secret["ARN"])

    result = invoke("manage")

    assert any(c.startswith(f"revoke rds_iam from {rm_database.app}") for c in result["changed"])
    assert "rds_iam" not in role(result, rm_database.app)["member_of"]
    assert "rds_iam" in role(result, rm_database.migrator)["member_of"]


def test_a_revoke_of_rds_iam_that_leaves_the_membership_is_no_change(
    rm_env: dict[str, str],
    rm_database: RmDatabase,
    rm_with_rds_iam: None,
    rm_aws: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Since PostgreSQL 16 a membership is one per grantor: REVOKE rds_iam by the master
    # leaves one another role granted, with a WARNING. The step asks again after it ran
    # (this cluster may be older, so the plan's own step is exercised here).
    invoke("manage")  # IAM mode first: both roles join rds_iam
    secret = rm_aws.create_secret(
        Name=f"{rm_database.dbname}/late-password",
        SecretString=json.dumps({"password": "s3cretpassw0rd"}),
    )
    monkeypatch.setenv("APP_PASSWORD_SECRET_ARN", secret["ARN"])
    app = rm_database.app
    config = role_manager.Config.from_env(dict(rm_env, APP_PASSWORD_SECRET_ARN=secret["ARN"]))
    report = role_manager.Report(action="manage")
    with psycopg.connect(rm_database.url()) as conn:
        steps = role_manager.plan(conn, config, {app: "s3cretpassw0rd"}, report)
        [step] = [s for s in steps if s.description.startswith(f"revoke rds_iam from {app}")]

        assert step.still_needed is not None and step.still_needed(conn)
        conn.execute(step.statement)
        assert not step.still_needed(conn)
        conn.rollback()

    role_manager.no_effect(report, step)
    assert report.errors == [
        f"no effect: {step.description}: it ran and {app} is still a member of rds_iam (since"
        " PostgreSQL 16 a membership is one per grantor, and one granted by another role"
        " survives the master user's REVOKE), so its password login is refused; it needs a"
        " person"
    ]


def test_a_new_password_in_the_secret_is_applied_once(
    rm_env: dict[str, str],
    rm_database: RmDatabase,
    rm_passwords: dict[str, str],
    rm_aws: Any,
) -> None:
    invoke("manage")
    app = rm_database.app
    rm_aws.put_secret_value(
        SecretId=f"{rm_database.dbname}/{app}",
        SecretString=json.dumps({"password": "rotated0123456789"}),
    )
    assert f"needs repair: set the password of {app} from its secret" in invoke("check")["errors"]

    assert f"set the password of {app} from its secret" in invoke("manage")["changed"]
    assert invoke("manage")["changed"] == []
    with psycopg.connect(rm_database.url(app, "rotated0123456789")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (app,)


def test_unreachable_database_is_an_error_not_a_crash(
    rm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_PORT", "1")
    monkeypatch.setenv("CONNECT_TIMEOUT_S", "2")

    result = invoke("check")

    assert result["ok"] is False
    assert result["errors"][0].startswith("database error (OperationalError)")
