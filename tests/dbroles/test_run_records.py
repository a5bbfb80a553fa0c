"""A provision that ran is on record, whatever happens to opsbot's database meanwhile.

The role manager may change the roles and then opsbot's own database blip as the
result's audit line is written, or the run outlast its claim and be called
interrupted. A provision's "started" line is committed before the function is
invoked; a result write that fails is tried again, and one that keeps failing is
logged at ERROR with what the run changed and counted `unknown`, while the person
still reads what was done (and an approved request is done, not failed). A run
called interrupted is audited and counted `unknown` then.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from bot.approvals.models import PendingAction
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.dbroles import requests as dbrole_requests
from sandbox.slack import SlackEmulator
from tests.dbroles.conftest import InProcessRoleManager, LambdaWorld
from tests.dbroles.test_dbroles import ask, audits, click
from tests.dbroles.test_run_outcomes import runs
from tests.support import LiveService


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dbrole_requests, "RESULT_WRITE_WAITS_S", (0.01, 0.01))


@contextmanager
def result_writes_fail(live: LiveService, times: int) -> Iterator[list[str]]:
    """opsbot's database drops the connection on the next `times` inserts of a
    provision's result line (its "started" line goes through)."""
    failed: list[str] = []

    def dropping(
        _conn: object, _cursor: object, statement: str, parameters: Any, *_args: object
    ) -> None:
        values = list(parameters.values() if isinstance(parameters, dict) else parameters or ())
        is_result = "dbrole.provision" in values and "started" not in values
        if statement.startswith("INSERT INTO audit_records") and is_result and len(failed) < times:
            failed.append(statement)
            raise OperationalError(statement, {}, Exception("server closed the connection"))

    engine = live.runtime.engine
    sa.event.listen(engine, "before_cursor_execute", dropping)
    try:
        yield failed
    finally:
        sa.event.remove(engine, "before_cursor_execute", dropping)


def errors_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "bot.dbroles.requests" and r.levelno >= logging.ERROR
    ]


def test_a_provision_whose_result_cannot_be_written_is_logged_counted_and_answered(
    live: LiveService,
    slack: SlackEmulator,
    lambdas: LambdaWorld,
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = lambdas.database
    caplog.set_level(logging.WARNING, logger="bot.dbroles.requests")

    with result_writes_fail(live, times=100) as failed:
        said = ask(live, slack, "provision shop staging")

    assert len(failed) == 3  # the first try and two more
    assert said.startswith(":white_check_mark: *Database roles of `shop/staging`* (provision): ")
    assert f"• create role {db.app}" in said
    assert sorted(db.roles()) == sorted([db.migrator, db.app])
    function = f"shop-staging-role-manager-{db.dbname}"
    assert audits(live) == [
        ("U0ALICE", "dbrole.provision", "dbrole:shop/staging", "started", {"function": function})
    ]
    assert (runs(live, "provision", "unknown"), runs(live, "provision", "ok")) == (1, 0)
    [error] = errors_of(caplog)
    assert (error.slack_user, error.request, error.outcome) == ("U0ALICE", None, "ok")  # type: ignore[attr-defined]
    assert f"create role {db.app}" in error.changed  # type: ignore[attr-defined]
    assert "could not be written" in error.getMessage()
    assert f"create role {db.app}" in error.getMessage()


def test_an_approved_provision_whose_result_write_blips_once_is_recorded_and_done(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    ask(live, slack, "provision shop prod")

    with result_writes_fail(live, times=1) as failed:
        done = click(live, slack, "approval_confirm", 1, "U0ALICE")

    assert len(failed) == 1
    assert done.startswith("*Database roles of `shop/prod`* (provision): ")
    assert [(a[3], a[4]["request"]) for a in audits(live)] == [("started", 1), ("ok", 1)]
    assert (runs(live, "provision", "ok"), runs(live, "provision", "unknown")) == (1, 0)
    with live.runtime.sessions() as session:
        [action] = session.scalars(sa.select(PendingAction)).all()
        assert action.status == "done"


def test_an_approved_provision_whose_result_is_never_written_is_done_not_failed(
    live: LiveService,
    slack: SlackEmulator,
    lambdas: LambdaWorld,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.dbroles.requests")
    ask(live, slack, "provision shop prod")

    with result_writes_fail(live, times=100):
        done = click(live, slack, "approval_confirm", 1, "U0ALICE")

    assert done.startswith("*Database roles of `shop/prod`* (provision): ")
    assert "change(s) made" in done
    with live.runtime.sessions() as session:
        [action] = session.scalars(sa.select(PendingAction)).all()
        assert (action.status, action.result) == ("done", done)
    assert [(a[3], a[4]["request"]) for a in audits(live)] == [("started", 1)]
    assert runs(live, "provision", "unknown") == 1
    [error] = errors_of(caplog)
    assert error.request == 1  # type: ignore[attr-defined]


class Stalls:
    """The role manager, slow enough that its run's claim lapses meanwhile (the claim's
    renewals failing, say): the expiry job, run then, calls the run interrupted."""

    def __init__(self, live: LiveService, real: InProcessRoleManager) -> None:
        self.live = live
        self.real = real

    def invoke(self, event: Any) -> Any:
        runtime = self.live.runtime
        clock = runtime.clock
        assert isinstance(clock, ManualClock)
        clock.advance(minutes=runtime.config.deploys.confirm_ttl_min + 1)
        runtime.scheduler.run_due(clock.now())
        return self.real.invoke(event)


def test_an_interrupted_provision_is_audited_and_counted_unknown(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    function = f"shop-prod-role-manager-{lambdas.database.dbname}"
    lambdas.door.functions[function] = Stalls(live, lambdas.prod)
    ask(live, slack, "provision shop prod")

    click(live, slack, "approval_confirm", 1, "U0ALICE")

    [started, interrupted, provisioned] = audits(live)
    assert started[3] == "started"
    assert interrupted == (
        "U0ALICE",
        "dbrole.provision",
        "dbrole:shop/prod",
        "unknown",
        {"request": 1, "interrupted": True, "function": function},
    )
    assert (provisioned[3], provisioned[4]["request"]) == ("ok", 1)
    # Counted unknown when it was called interrupted, and ok when its result came after all.
    assert (runs(live, "provision", "unknown"), runs(live, "provision", "ok")) == (1, 1)
    with live.runtime.sessions() as session:
        late = session.scalars(
            sa.select(AuditRecord).where(AuditRecord.action == "approval.late_result")
        ).all()
        assert [entry.detail["request"] for entry in late] == [1]
