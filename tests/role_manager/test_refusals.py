"""What the role manager must not touch, on a PostgreSQL set up like RDS.

The cluster gets RDS's roles (rdsadmin a superuser, rds_superuser with CREATEROLE and
CREATEDB, rds_iam, ...) and the test's database a master user as RDS makes one: no
superuser, a member of rds_superuser, the function's MASTER_SECRET_ARN (conftest.py,
rm_rds). Each refusal is an error in the result, is logged once, and changes nothing:
the catalog as a superuser sees it (pg_authid with the password hashes, memberships,
schemas, ACLs) is the same after, and the master still logs in with its password.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import role_manager  # from infra/lambda/role_manager, put on sys.path by conftest.py
from psycopg import sql

if TYPE_CHECKING:
    from conftest import RdsLike, RmDatabase

RDS_ROLES = ["rdsadmin", "rds_superuser", "rds_iam", "rds_password", "rds_replication"]


def invoke(action: str) -> dict[str, Any]:
    result = role_manager.handler({"action": action}, None)
    json.dumps(result)  # the bot receives it as JSON
    return result


def watched(db: RmDatabase, rds: RdsLike, *more: str) -> list[str]:
    return [rds.master, db.migrator, db.app, *RDS_ROLES, "pg_monitor", *more]


def snapshot(db: RmDatabase, rds: RdsLike, roles: list[str]) -> list[Any]:
    """Everything a run could change, as a superuser sees it."""
    with rds.superuser(db) as conn:
        return [
            # Every attribute and the password hash (pg_authid: superusers only).
            conn.execute(
                "SELECT a.*, r.rolconfig FROM pg_authid a JOIN pg_roles r ON r.oid = a.oid"
                " WHERE a.rolname = ANY(%s) ORDER BY a.rolname",
                (roles,),
            ).fetchall(),
            conn.execute(
                "SELECT roleid::regrole::text, member::regrole::text, grantor::regrole::text,"
                " admin_option FROM pg_auth_members"
                " WHERE roleid::regrole::text = ANY(%(roles)s)"
                " OR member::regrole::text = ANY(%(roles)s) ORDER BY 1, 2, 3",
                {"roles": roles},
            ).fetchall(),
            conn.execute(
                "SELECT nspname, nspowner::regrole::text, nspacl::text FROM pg_namespace ORDER BY 1"
            ).fetchall(),
            conn.execute(
                "SELECT defaclrole::regrole::text, defaclacl::text FROM pg_default_acl ORDER BY 1, 2"
            ).fetchall(),
            conn.execute(
                "SELECT datdba::regrole::text, datacl::text FROM pg_database WHERE datname = %s",
                (db.dbname,),
            ).fetchall(),
        ]


def master_logs_in(db: RmDatabase, rds: RdsLike) -> bool:
    with psycopg.connect(db.url(rds.master, rds.master_password)) as conn:
        row = conn.execute("SELECT current_user, pg_has_role('rds_superuser', 'MEMBER')").fetchone()
    return row == (rds.master, True)


def refusal_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == "role_manager.refused"]


def assert_refused(
    result: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    *,
    action: str,
    setting: str,
    name: str,
    why: str,
) -> None:
    """One refusal of `name`: in the result (ok false, nothing changed) and logged once."""
    assert result["ok"] is False
    assert result["refused"] is True
    assert result["summary"] == f"{action}: refused, nothing was changed"
    assert result["changed"] == [] and result["roles"] == []
    [error] = result["errors"]
    assert error.startswith(f"refused, nothing was changed: {setting}={name!r}: ")
    assert why in error
    [record] = refusal_logs(caplog)
    assert record.levelno == logging.WARNING
    fields = json.loads(record.getMessage().removeprefix("role manager refused: "))
    assert fields == {
        "event": "role_manager.refused",
        "action": action,
        "setting": setting,
        "refused_name": repr(name),
        "reason": error.split(": ", 2)[2],
    }
    assert not any(r.getMessage().startswith("role manager result") for r in caplog.records)


RDS_OWN = "RDS's own roles start with 'rds'"
MASTER = "it is the master user (MASTER_SECRET_ARN's username)"


@pytest.mark.parametrize(
    ("action", "setting", "name", "why"),
    [
        # Seen: asked to manage rds_superuser, it made RDS's admin group a login role.
        ("manage", "APP_ROLE", "rds_superuser", RDS_OWN),
        ("manage", "MIGRATOR_ROLE", "rdsadmin", RDS_OWN),
        ("manage", "APP_ROLE", "rds_iam", RDS_OWN),
        ("check", "APP_ROLE", "rds_superuser", RDS_OWN),
        ("manage", "APP_ROLE", "postgres", "PostgreSQL's bootstrap superuser"),
        ("manage", "MIGRATOR_ROLE", "pg_monitor", "PostgreSQL's predefined roles"),
        ("manage", "SCHEMA_NAME", "aws_commons", "RDS's extensions"),
        ("manage", "SCHEMA_NAME", "public", "every role shares it"),
        # Seen: asked to manage the master's own name, it set the app's password on the
        # master and locked everything out.
        ("manage", "APP_ROLE", "{master}", MASTER),
        ("manage", "MIGRATOR_ROLE", "{master}", MASTER),
        ("check", "APP_ROLE", "{master}", MASTER),
    ],
)
def test_what_it_must_not_touch_is_refused_and_nothing_changes(
    rm_rds: RdsLike,
    rm_database: RmDatabase,
    rm_passwords: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    action: str,
    setting: str,
    name: str,
    why: str,
) -> None:
    # The function did its work, then its configuration named what it must not touch.
    # Password mode: a run that got as far as the roles would set the app's password.
    assert invoke("manage")["ok"]
    caplog.clear()
    name = name.format(master=rm_rds.master)
    monkeypatch.setenv(setting, name)
    roles = watched(rm_database, rm_rds, name)
    before = snapshot(rm_database, rm_rds, roles)

    result = invoke(action)

    assert_refused(result, caplog, action=action, setting=setting, name=name, why=why)
    assert snapshot(rm_database, rm_rds, roles) == before
    assert master_logs_in(rm_database, rm_rds)


def test_an_existing_role_in_rds_superuser_is_not_taken_over(
    rm_rds: RdsLike,
    rm_database: RmDatabase,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ident = sql.Identifier
    # Through a group in between: the group's name says nothing, its membership does.
    admins, dba = f"{rm_database.app}_admins", f"{rm_database.app}_dba"
    rm_rds.also_drop.extend([admins, dba])
    with rm_rds.superuser(rm_database) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident(admins)))
        conn.execute(sql.SQL("GRANT rds_superuser TO {}").format(ident(admins)))
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN IN ROLE {}").format(ident(dba), ident(admins)))
    monkeypatch.setenv("APP_ROLE", dba)
    roles = watched(rm_database, rm_rds, admins, dba)
    before = snapshot(rm_database, rm_rds, roles)

    result = invoke("manage")

    assert_refused(
        result,
        caplog,
        action="manage",
        setting="APP_ROLE",
        name=dba,
        why="already exists with membership in rds_superuser: the role manager never takes"
        " over a role more powerful",
    )
    assert snapshot(rm_database, rm_rds, roles) == before


@pytest.mark.parametrize(
    ("setup", "setting", "why"),
    [
        (
            "CREATE ROLE {migrator} NOLOGIN CREATEROLE",
            "MIGRATOR_ROLE",
            "already exists with CREATEROLE",
        ),
        (
            "CREATE SCHEMA {schema} AUTHORIZATION rdsadmin",
            "SCHEMA_NAME",
            "exists and belongs to 'rdsadmin' (RDS's own roles",
        ),
    ],
)
def test_what_exists_already_and_is_too_powerful_is_not_taken(
    rm_rds: RdsLike,
    rm_database: RmDatabase,
    caplog: pytest.LogCaptureFixture,
    setup: str,
    setting: str,
    why: str,
) -> None:
    names = {"migrator": rm_database.migrator, "schema": rm_database.schema}
    with rm_rds.superuser(rm_database) as conn:
        conn.execute(sql.SQL(setup).format(**{key: sql.Identifier(v) for key, v in names.items()}))
    roles = watched(rm_database, rm_rds)
    before = snapshot(rm_database, rm_rds, roles)

    result = invoke("manage")

    name = names["migrator" if setting == "MIGRATOR_ROLE" else "schema"]
    assert_refused(result, caplog, action="manage", setting=setting, name=name, why=why)
    assert snapshot(rm_database, rm_rds, roles) == before


def test_manage_works_as_an_rds_master_and_leaves_the_master_as_it_was(
    rm_rds: RdsLike, rm_database: RmDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    master_row = [rm_rds.master]
    before = snapshot(rm_database, rm_rds, master_row)[0]

    result = invoke("manage")

    assert result["ok"], result["errors"]
    assert result["refused"] is False
    for name in (rm_database.migrator, rm_database.app):
        assert f"grant rds_iam to {name} (IAM authentication)" in result["changed"]
    assert invoke("manage")["changed"] == []
    assert invoke("check")["ok"]
    assert refusal_logs(caplog) == []
    # The master's attributes and password are as they were; it gained the migrator
    # (to hand it the schema), nothing else.
    assert snapshot(rm_database, rm_rds, master_row)[0] == before
    assert master_logs_in(rm_database, rm_rds)
    with rm_rds.superuser(rm_database) as conn:
        rows = conn.execute(
            "SELECT roleid::regrole::text FROM pg_auth_members"
            " WHERE member::regrole::text = %s ORDER BY 1",
            (rm_rds.master,),
        ).fetchall()
    assert rows == sorted([(rm_database.migrator,), ("rds_superuser",)])


@pytest.mark.parametrize("power", ["SUPERUSER", "CREATEROLE", "REPLICATION", "BYPASSRLS"])
def test_an_existing_role_that_may_become_a_powerful_group_is_not_taken_over(
    rm_rds: RdsLike,
    rm_database: RmDatabase,
    rm_passwords: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    power: str,
) -> None:
    ident = sql.Identifier
    # Seen: the app role was in an ordinary group that was SUPERUSER; manage gave it the
    # app's password, and with it `SET ROLE` to that group made the app a superuser.
    # The group is reached through another one: membership counts, directly or not.
    dba, ops = f"{rm_database.app}_opsdba", f"{rm_database.app}_ops"
    rm_rds.also_drop.extend([dba, ops])
    with rm_rds.superuser(rm_database) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN " + power).format(ident(dba)))
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN IN ROLE {}").format(ident(ops), ident(dba)))
        conn.execute(
            sql.SQL("CREATE ROLE {} NOLOGIN IN ROLE {}").format(ident(rm_database.app), ident(ops))
        )
    roles = watched(rm_database, rm_rds, dba, ops)
    before = snapshot(rm_database, rm_rds, roles)
    why = (
        f"already exists with membership in {dba} ({power}): the role manager never takes"
        " over a role more powerful"
    )

    result = invoke("manage")

    assert_refused(
        result, caplog, action="manage", setting="APP_ROLE", name=rm_database.app, why=why
    )
    assert snapshot(rm_database, rm_rds, roles) == before
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(rm_database.url(rm_database.app, rm_passwords[rm_database.app])).close()
    caplog.clear()
    checked = invoke("check")
    assert_refused(
        checked, caplog, action="check", setting="APP_ROLE", name=rm_database.app, why=why
    )


def test_a_schema_owned_by_a_member_of_a_powerful_group_is_not_taken(
    rm_rds: RdsLike, rm_database: RmDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    ident = sql.Identifier
    dba, owner = f"{rm_database.app}_opsdba", f"{rm_database.app}_owner"
    rm_rds.also_drop.extend([dba, owner])
    with rm_rds.superuser(rm_database) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN BYPASSRLS").format(ident(dba)))
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN IN ROLE {}").format(ident(owner), ident(dba)))
        conn.execute(
            sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                ident(rm_database.schema), ident(owner)
            )
        )
    roles = watched(rm_database, rm_rds, dba, owner)
    before = snapshot(rm_database, rm_rds, roles)

    result = invoke("manage")

    assert_refused(
        result,
        caplog,
        action="manage",
        setting="SCHEMA_NAME",
        name=rm_database.schema,
        why=f"exists and belongs to {owner!r} (membership in {dba} (BYPASSRLS)): the role"
        " manager never takes a schema from such a role",
    )
    assert snapshot(rm_database, rm_rds, roles) == before
