"""A role manager whose database session fails mid-run, against a real PostgreSQL.

The failure is real: the function's session is ended by the server
(pg_terminate_backend from another session) right after manage's commit, or right
before it. The function is handed a psycopg connection that does this through its
`connect` parameter; everything else is the function as the Lambda runs it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import role_manager  # from infra/lambda/role_manager, put on sys.path by conftest.py

from bot.dbroles.models import ManagerResult, Outcome
from bot.dbroles.render import outcome_text

if TYPE_CHECKING:
    from conftest import RmDatabase

AFTER_THE_COMMIT = (
    "failed after the commit, so what was changed stands, but the roles could not be"
    " described (run check to see them): database error ("
)
LOGGED_ONLY = "): its message is in the function's log"


def invoke(action: str, connect: role_manager.Connect = role_manager.connect_master) -> Any:
    result = role_manager.handler({"action": action}, None, connect=connect)
    return json.loads(json.dumps(result))  # the bot receives it as JSON


def terminate(db: RmDatabase, pid: int) -> None:
    """End a session of the test's master user as the server would, and wait until it has."""
    with db.connect() as other:
        row = other.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()
    assert row == (True,)


def ending_at_commit(db: RmDatabase, *, after: bool) -> role_manager.Connect:
    """Connects as the function does, to a session the server ends at the commit.

    `after`: once the commit is done (the changes stand); else just before it (the
    transaction is rolled back with the session).
    """

    class EndsAtCommit(psycopg.Connection[Any]):
        def commit(self) -> None:
            if after:
                super().commit()
            terminate(db, self.info.backend_pid)
            if not after:
                super().commit()

    def connect(config: role_manager.Config, secret: Mapping[str, Any]) -> psycopg.Connection[Any]:
        return EndsAtCommit.connect(
            host=config.host,
            port=config.port,
            dbname=config.dbname,
            user=secret["username"],
            password=secret["password"],
            sslmode=config.sslmode,
        )

    return connect


def existing_roles(db: RmDatabase) -> list[str]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname",
            ([db.migrator, db.app],),
        ).fetchall()
    return [r[0] for r in rows]


def failure_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == "role_manager.failed"]


def provision_text(result: dict[str, Any]) -> str:
    """What /dbrole provision shows for this result (the bot's own parsing and rendering)."""
    parsed = ManagerResult.from_payload(result)
    assert parsed is not None
    return outcome_text(
        Outcome(action="manage", label="shop/staging", function="rm", result=parsed)
    )


def test_a_failure_after_the_commit_keeps_what_was_changed(
    rm_env: dict[str, str], rm_database: RmDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    migrator, app = rm_database.migrator, rm_database.app

    result = invoke("manage", ending_at_commit(rm_database, after=True))

    assert result["ok"] is False
    assert f"create role {migrator}" in result["changed"]
    assert f"create role {app}" in result["changed"]
    assert result["committed"] is True
    assert result["ran"] is True  # it did what `changed` lists
    [error] = result["errors"]
    assert error.startswith(AFTER_THE_COMMIT) and error.endswith(LOGGED_ONLY)
    assert result["summary"] == f"manage: {len(result['changed'])} change(s) made, 1 error(s)"
    assert result["roles"] == []  # the description was cut short: none is claimed
    # The changes it lists are all made: the roles exist, a check finds nothing to
    # repair, and another manage has nothing to change.
    assert existing_roles(rm_database) == sorted([migrator, app])
    assert invoke("check")["ok"]
    assert invoke("manage")["changed"] == []
    [record] = failure_records(caplog)
    assert record.levelno == logging.ERROR
    assert record.__dict__["committed"] is True
    assert record.__dict__["changed"] == len(result["changed"])
    assert record.__dict__["database"] == rm_database.dbname
    assert record.exc_info is not None  # the whole message, in the function's own log

    # What the person reads and what the audit keeps: the changes, not "nothing".
    parsed = ManagerResult.from_payload(result)
    assert parsed is not None
    text = provision_text(result)
    assert text.startswith(":x: *Database roles of `shop/staging`* (provision): failed.")
    assert "*Changed*: nothing." not in text
    assert f"*Changed*\n• create role {migrator}\n" in text
    assert "failed after the commit, so what was changed stands" in text
    audit = Outcome(action="manage", label="shop/staging", function="rm", result=parsed)
    assert audit.audit_detail()["changed"] == result["changed"]


def test_a_failure_before_the_commit_reports_nothing_changed(
    rm_env: dict[str, str], rm_database: RmDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    result = invoke("manage", ending_at_commit(rm_database, after=False))

    assert result["ok"] is False
    assert result["committed"] is False
    assert result["ran"] is False  # rolled back: it reports nothing it found or did
    assert result["changed"] == []
    [error] = result["errors"]
    assert error.startswith("database error (") and error.endswith(LOGGED_ONLY)
    assert existing_roles(rm_database) == []  # rolled back with the session
    [record] = failure_records(caplog)
    assert record.__dict__["committed"] is False
    assert "*Changed*: nothing." in provision_text(result)


def test_a_database_error_shows_no_host_or_address(
    rm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DB_HOST", "127.0.0.1")
    monkeypatch.setenv("DB_PORT", "1")
    monkeypatch.setenv("CONNECT_TIMEOUT_S", "2")

    result = invoke("check")

    assert result["errors"] == [f"database error (OperationalError{LOGGED_ONLY}"]
    assert "127.0.0.1" not in json.dumps(result)
    assert result["committed"] is False
    assert result["ran"] is False
    # The operator still finds the server's words, in the function's own log.
    [record] = failure_records(caplog)
    assert record.exc_info is not None
    assert "127.0.0.1" in str(record.exc_info[1])
