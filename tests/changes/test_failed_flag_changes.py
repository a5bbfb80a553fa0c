"""A flag change that failed after it wrote something is among the changes before an alarm.

An SSM parameter written before ECS refused the restart is what every task ECS
starts from then on reads: the incident lists it ("written, not restarted") with
its undo, and the answer to the change says the value is stored. An undo that
fails on the bot's side says part of it may have been done. ECS refuses through
moto (its backend's UpdateService answers AccessDenied); the database fails at
the driver (SQLAlchemy's before_cursor_execute).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from moto.ecs.models import EC2ContainerServiceBackend
from sqlalchemy.exc import OperationalError

from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.flags.errors import FlagFailed
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import CLAIMED, changes_config
from tests.changes.test_changes import alarm, flip, press, undo_buttons
from tests.changes.test_outside import text_with
from tests.deploys.test_deploy_observability import denied, moto_answers, refuse
from tests.deploys.world import World
from tests.flags.conftest import SERVICE_NAME, FlagWorld
from tests.support import LiveService, wait_for


@pytest.fixture
def ssm_prod() -> bool:
    return False  # api/prod keeps its flags in AppConfig (tests/flags/conftest.py)


@pytest.fixture
def app_config(flag_world: FlagWorld, ssm_prod: bool) -> Config:
    config = changes_config(flag_world)
    if ssm_prod:
        prod = config["apps"]["api"]["environments"]["prod"]
        prod["flags"] = {"backend": "ssm", "service_name": SERVICE_NAME}
    return parse_config(config)


@pytest.mark.parametrize("ssm_prod", [True])
def test_an_ssm_flag_written_whose_restart_failed_is_listed_and_can_be_undone(
    live: LiveService,
    world: World,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    with (
        moto_answers(
            EC2ContainerServiceBackend, "update_service", refuse(denied("ecs:UpdateService"))
        ),
        pytest.raises(FlagFailed) as failed,
    ):
        flip(runtime, "on", "apple_pay", actor="U0ALICE")
    answer = str(failed.value)
    assert answer.startswith(
        "`APPLE_PAY` of `api/prod` is now *true* in SSM (parameter version 2): the value is "
        "stored, and every task ECS starts from now on reads it. But the service was not "
        "restarted (AWS refused to force a new deployment of the service: AccessDeniedException"
    )
    assert flag_world.ssm_value("APPLE_PAY") == "true"

    clock.advance(minutes=5)
    incident, message = alarm(live, sns_signer, releases, CLAIMED)
    text = text_with(releases, incident, "APPLE_PAY")
    assert "written, not restarted" in text
    button = undo_buttons(message)["Turn APPLE_PAY off again"]
    done = press(live, releases, button, user="U0ALICE")
    assert "`APPLE_PAY` of `api/prod` is now *false*" in done
    assert flag_world.ssm_value("APPLE_PAY") == "false"


@contextmanager
def failing_undo_records(live: LiveService) -> Iterator[list[str]]:
    """The database drops the connection when an undo that was made is recorded."""
    failed: list[str] = []

    def dropping(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any, **__: Any
    ) -> None:
        values = list(parameters.values() if isinstance(parameters, dict) else parameters or ())
        done = "incident.undo" in values and "ok" in values
        if statement.startswith("INSERT INTO audit_records") and done and not failed:
            failed.append(statement)
            raise OperationalError(statement, {}, Exception("server closed the connection"))

    sa.event.listen(live.runtime.engine, "before_cursor_execute", dropping)
    try:
        yield failed
    finally:
        sa.event.remove(live.runtime.engine, "before_cursor_execute", dropping)


def test_an_undo_that_fails_on_the_bots_side_says_part_of_it_may_have_been_done(
    live: LiveService,
    world: World,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    assert "AppConfig deployment 1 started" in flip(runtime, "on", "apple_pay", actor="U0ALICE")
    clock.advance(minutes=5)
    _, message = alarm(live, sns_signer, releases, CLAIMED)
    button = undo_buttons(message)["Turn apple_pay off again"]
    with failing_undo_records(live) as failed:
        answer = press(live, releases, button, user="U0ALICE")
    assert failed  # the undo was made (AppConfig deployment 2), its record failed
    assert answer == (
        "Something went wrong on the bot's side (it is logged); part of it may have been "
        "done: check `/flag list` and the incident's message before trying again."
    )
    wait_for(lambda: len(flag_world.deployments()) == 2)
