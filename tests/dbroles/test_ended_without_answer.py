"""A role-manager run that Lambda ended without the handler's answer (a timeout, the
runtime's exit): a `manage` may have committed first, so it is said as unanswered, not
failed; a `check` changes nothing and is said as failed.

The handler answers its own failures as a result (with `committed`), never as a function
error: a function error other than its code failing to load came from around it.
"""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.slack import SlackEmulator
from tests.dbroles.conftest import InProcessRoleManager, LambdaWorld, lambda_error
from tests.dbroles.test_dbroles import ask, audits
from tests.dbroles.test_run_outcomes import runs
from tests.support import LiveService


class RunsThenEnds:
    """The real role manager, whose invocation Lambda ends once it has run (committed)."""

    def __init__(self, manager: InProcessRoleManager, error_type: str, message: str) -> None:
        self.manager = manager
        self.error = lambda_error(error_type)(message)

    def invoke(self, event: Any) -> Any:
        self.manager.invoke(event)
        raise self.error


@pytest.mark.parametrize(
    ("error_type", "message"),
    [
        ("Sandbox.Timedout", "Task timed out after 60.00 seconds"),
        ("Runtime.ExitError", "Runtime exited with error: signal: killed"),
        ("MemoryError", ""),
    ],
)
def test_a_provision_ended_without_its_answer_may_have_run(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld, error_type: str, message: str
) -> None:
    db = lambdas.database
    function = f"shop-staging-role-manager-{db.dbname}"
    lambdas.door.functions[function] = RunsThenEnds(lambdas.staging, error_type, message)

    text = ask(live, slack, "provision shop staging")

    said = f"{error_type}: {message}" if message else error_type
    assert text == (
        f":warning: *Database roles of `shop/staging`* (provision): the role manager "
        f"`{function}` may have run, but it ended without its answer ({said}): run "
        "`/dbrole check shop staging` to see where the roles stand."
    )
    assert db.roles() == sorted([db.migrator, db.app])  # it had run, and committed
    [started, (actor, action, _, outcome, detail)] = audits(live)
    assert started[1:4] == ("dbrole.provision", "dbrole:shop/staging", "started")
    assert (actor, action, outcome, detail["unanswered"]) == (
        "U0ALICE",
        "dbrole.provision",
        "unknown",
        True,
    )
    assert runs(live, "provision", "unknown") == 1
    assert runs(live, "provision", "failed") == 0


def test_a_check_ended_without_its_answer_failed(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    function = f"shop-staging-role-manager-{lambdas.database.dbname}"
    lambdas.door.functions[function] = RunsThenEnds(
        lambdas.staging, "Sandbox.Timedout", "Task timed out after 60.00 seconds"
    )

    text = ask(live, slack, "check shop staging")

    assert text == (
        f":x: *Database roles of `shop/staging`* (check): the role manager `{function}` "
        "failed: Sandbox.Timedout: Task timed out after 60.00 seconds."
    )
    assert audits(live)[-1][3] == "failed"
