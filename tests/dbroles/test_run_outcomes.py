"""What a role-manager run that did not go well leaves for an operator, and a lost answer.

Each run is audited, counted in `opsbot_dbrole_runs_total{action,outcome}`, and,
when it did not go well (the function answered ok:false, raised, answered
something that is not a result, or could not be invoked), logged as a warning
naming the function, the environment, the person and the request.

A `manage` is never retried after a lost answer: botocore's retry would run the
role manager again (or be throttled by its reserved concurrency while the first
run goes on). Its answer lost (a 5xx here, as a read timeout would be), the
person reads that it may have run and how to see, and the audit says unknown.
Only a throttled invocation (429), which did not run, is tried again after a pause.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from bot.adapters import awslambda
from bot.adapters.aws import ATTEMPTS
from bot.approvals.models import PendingAction
from bot.clock import ManualClock
from bot.config import parse_config
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from tests.dbroles.conftest import RELEASES, LambdaWorld, dbrole_config
from tests.dbroles.test_dbroles import ask, audits, click
from tests.deploys.conftest import T0
from tests.support import LiveService


class NotTheRoleManager:
    """A function that answers, but not as the role manager does (a mistyped name)."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def invoke(self, event: Any) -> Any:
        self.events.append(event)
        return {"hello": "world"}


class OlderRoleManager:
    """A role manager from before results said whether it ran (no "ran" key)."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def invoke(self, event: Any) -> Any:
        self.events.append(event)
        return {
            "action": event["action"],
            "ok": False,
            "changed": [],
            "errors": ["needs repair: create role shop_app"],
            "refused": False,
        }


def runs(live: LiveService, action: str, outcome: str) -> float:
    registry = live.runtime.metrics.registry
    labels = {"action": action, "outcome": outcome}
    return registry.get_sample_value("opsbot_dbrole_runs_total", labels) or 0.0


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "bot.dbroles.requests" and r.levelno == logging.WARNING
    ]


@pytest.fixture
def counted(live: LiveService) -> LiveService:
    # bot/app.py wires the counter for every runtime: nothing to add here.
    return live


def test_runs_that_did_not_go_well_are_logged_and_counted(
    counted: LiveService,
    slack: SlackEmulator,
    lambdas: LambdaWorld,
    caplog: pytest.LogCaptureFixture,
) -> None:
    live = counted
    suffix = lambdas.database.dbname
    stranger = NotTheRoleManager()
    lambdas.door.functions[f"shop-qa-role-manager-{suffix}"] = stranger
    caplog.set_level(logging.WARNING, logger="bot.dbroles.requests")

    # Its database does not answer: the check failed, it found no problems to repair.
    assert "failed, nothing was checked." in ask(live, slack, "check shop down")
    assert "failed: Runtime.ImportModuleError" in ask(live, slack, "provision shop broken")
    assert "is not a role-manager result" in ask(live, slack, "provision shop qa")

    assert stranger.events == [{"action": "manage"}]
    assert (runs(live, "check", "failed"), runs(live, "provision", "failed")) == (1, 2)
    assert runs(live, "check", "problems") == 0
    logged = [
        (r.slack_user, r.target, r.function, r.outcome, r.request)  # type: ignore[attr-defined]
        for r in warnings_of(caplog)
    ]
    assert logged == [
        ("U0ALICE", "dbrole:shop/down", f"shop-down-role-manager-{suffix}", "failed", None),
        ("U0ALICE", "dbrole:shop/broken", f"shop-broken-role-manager-{suffix}", "failed", None),
        ("U0ALICE", "dbrole:shop/qa", f"shop-qa-role-manager-{suffix}", "failed", None),
    ]
    [down, broken, _] = [r.getMessage() for r in warnings_of(caplog)]
    assert "dbrole check of shop/down by U0ALICE" in down and "database error" in down
    assert "Runtime.ImportModuleError" in broken

    caplog.clear()
    assert "change(s) made" in ask(live, slack, "provision shop staging")

    assert runs(live, "provision", "ok") == 1
    assert warnings_of(caplog) == []


def test_a_provision_whose_answer_was_lost_is_not_retried_and_may_have_run(
    counted: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    live = counted
    function = f"shop-staging-role-manager-{lambdas.database.dbname}"
    lambdas.door.server.faults.fail_next(1, status=500, calls=("lambda",), method="POST")

    text = ask(live, slack, "provision shop staging")

    assert text.startswith(
        f":warning: *Database roles of `shop/staging`* (provision): the role manager "
        f"`{function}` may have run, but its answer was lost ("
    )
    assert text.endswith("run `/dbrole check shop staging` to see where the roles stand.")
    assert lambdas.staging.events == []  # no second invocation behind the lost answer
    [started, (actor, action, _, outcome, detail)] = audits(live)
    assert started[1:4] == ("dbrole.provision", "dbrole:shop/staging", "started")
    assert (actor, action, outcome, detail["unanswered"]) == (
        "U0ALICE",
        "dbrole.provision",
        "unknown",
        True,
    )
    assert runs(live, "provision", "unknown") == 1


def test_a_check_is_retried_as_any_call_it_changes_nothing(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    lambdas.door.server.faults.fail_next(1, status=500, calls=("lambda",), method="POST")

    assert "problem(s)" in ask(live, slack, "check shop staging")

    assert lambdas.staging.events == [{"action": "check"}]


def test_an_environment_that_only_requires_approval_is_not_called_protected(
    settings: Settings,
    slack: SlackEmulator,
    make_service: Callable[..., LiveService],
    lambdas: LambdaWorld,
) -> None:
    slack.add_channel(RELEASES, "releases")
    config = dbrole_config(lambdas.database.dbname)
    config["apps"]["shop"]["environments"]["vault"]["protected"] = False
    live = make_service(settings, parse_config(config), clock=ManualClock(T0), run_jobs=False)

    assert ask(live, slack, "provision shop vault") == (
        "`shop/vault` requires approval: request #1 to provision its database roles waits for "
        f"the approval of a second person in <#{RELEASES}>."
    )


def test_an_approved_provision_throttled_by_a_concurrent_check_runs_after_a_pause(
    counted: LiveService,
    slack: SlackEmulator,
    lambdas: LambdaWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The role manager's reserved concurrency is 1: anyone's `/dbrole check` running just
    then has the approved provision's invocation throttled (429). It did not run, so it
    is tried again, and the request's clicks are not spent on nothing."""
    live = counted
    monkeypatch.setattr(awslambda, "THROTTLE_WAITS_S", (0.05, 0.1))
    ask(live, slack, "provision shop prod")
    lambdas.door.server.faults.fail_next(2, status=429, calls=("lambda",), method="POST")

    done = click(live, slack, "approval_confirm", 1, "U0ALICE")

    assert done.startswith("*Database roles of `shop/prod`* (provision): ")
    assert "change(s) made" in done
    assert lambdas.prod.events == [{"action": "manage"}]
    with live.runtime.sessions() as db:
        [action] = db.scalars(sa.select(PendingAction)).all()
        assert action.status == "done"
    assert runs(live, "provision", "ok") == 1


def test_a_provision_throttled_on_every_try_says_it_did_not_run(
    counted: LiveService,
    slack: SlackEmulator,
    lambdas: LambdaWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    live = counted
    monkeypatch.setattr(awslambda, "THROTTLE_WAITS_S", (0.05, 0.1))
    function = f"shop-staging-role-manager-{lambdas.database.dbname}"
    lambdas.door.server.faults.fail_next(3, status=429, calls=("lambda",), method="POST")

    text = ask(live, slack, "provision shop staging")

    assert text.startswith(
        f":x: *Database roles of `shop/staging`* (provision): the role manager `{function}` "
        "was throttled on every try ("
    )
    assert "so it did not run" in text
    assert lambdas.staging.events == [] and lambdas.database.roles() == []
    assert audits(live)[-1][3] == "failed"


def test_a_check_throttled_on_every_try_says_it_was_throttled(
    counted: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    """A check's client retries (it changes nothing): after botocore's tries, each one
    throttled (429) while another run holds the function's one slot, the person reads
    that it was throttled, not that it could not be invoked."""
    live = counted
    function = f"shop-staging-role-manager-{lambdas.database.dbname}"
    lambdas.door.server.faults.fail_next(ATTEMPTS, status=429, calls=("lambda",), method="POST")

    text = ask(live, slack, "check shop staging")

    assert text.startswith(
        f":x: *Database roles of `shop/staging`* (check): the role manager `{function}` "
        "was throttled ("
    )
    assert text.endswith("another run of it may hold its one slot; try again in a minute.")
    assert lambdas.staging.events == []
    assert runs(live, "check", "failed") == 1


def test_an_older_role_manager_that_does_not_say_whether_it_ran_is_taken_to_have_run(
    counted: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    live = counted
    older = OlderRoleManager()
    lambdas.door.functions[f"shop-qa-role-manager-{lambdas.database.dbname}"] = older

    text = ask(live, slack, "check shop qa")

    assert text.startswith(":warning: *Database roles of `shop/qa`* (check): 1 problem(s).")
    assert "`/dbrole provision shop qa` repairs what can be repaired." in text
    assert runs(live, "check", "problems") == 1
    assert older.events == [{"action": "check"}]
