"""What a person sees of a submission whatever happens behind it: a database failing
after the work, the same view submitted twice, work that raised part-way, the
process stopping, and a refusal answered by message after the form closed.

The database's failures and delays are made at SQLAlchemy's event hooks on the
live service's own engine: a statement raises as a dropped connection does, or
a submission's work waits for its first connection (holding no lock).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from bot.config import Config
from bot.deploys.models import Deployment
from bot.incidents.models import Incident
from bot.modals import service
from bot.modals.submissions import SubmittedViews
from bot.outbox.models import Delivery
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from sandbox.slack_view_requests import state_values
from sandbox.slack_views import OpenView
from tests.flags.conftest import FlagWorld
from tests.modals.conftest import Modals
from tests.support import LiveService, metric, wait_for

PROD = "api/prod"
STAGING = "api/staging"
DECLARE: dict[str, str | None] = {service.SUMMARY: "Checkout is down", service.ROUTE: "prod"}


def counted(live: LiveService, modal: str, outcome: str) -> float:
    return metric(live, "opsbot_modals_total", modal=modal, outcome=outcome)


def in_modal_work() -> bool:
    return threading.current_thread().name.startswith("modal-submit")


@contextmanager
def failing(
    engine: sa.Engine, starts: str, *, only: Callable[[str, list[Any]], bool]
) -> Iterator[None]:
    """Statements starting with `starts` (upper case) for which `only(statement, values)`
    holds raise as a connection reset mid-statement does."""

    def fail(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        text = " ".join(statement.split()).upper()
        values = list(parameters.values() if isinstance(parameters, dict) else parameters or ())
        if text.startswith(starts) and only(text, values):
            raise sa.exc.OperationalError(statement, parameters, Exception("connection reset"))

    sa.event.listen(engine, "before_cursor_execute", fail)
    try:
        yield
    finally:
        sa.event.remove(engine, "before_cursor_execute", fail)


@contextmanager
def held_work(engine: sa.Engine) -> Iterator[tuple[threading.Event, threading.Event]]:
    """A slow database: the first connection a submission's work takes from the pool comes
    when `go` is set (`entered` is set then); no transaction is open while it waits."""
    entered, go = threading.Event(), threading.Event()

    def checkout(*_: object) -> None:
        if in_modal_work() and not entered.is_set():
            entered.set()
            assert go.wait(30)

    sa.event.listen(engine, "checkout", checkout)
    try:
        yield entered, go
    finally:
        go.set()
        sa.event.remove(engine, "checkout", checkout)


def releasing_a_view(text: str, _values: list[Any]) -> bool:
    """SubmittedViews.release's UPDATE (not a claim's take-over, which compares the lease)."""
    return (
        in_modal_work()
        and text.startswith("UPDATE INBOUND_RECEIPTS SET LEASE_UNTIL=")
        and ("LEASE_UNTIL <" not in text)
    )


def deliveries_saying(live: LiveService, words: str) -> list[str]:
    with live.runtime.sessions() as db:
        bodies = [str(d.payload) for d in db.scalars(sa.select(Delivery))]
    return [body for body in bodies if words in body]


def opened_by(modals: Modals, name: str, text: str = "", *, user: str = "U0ALICE") -> OpenView:
    opened = modals.command(name, text, user=user)
    assert opened.view is not None, opened.ack
    return opened.view


@pytest.fixture
def hurried(
    aws_settings: Settings,
    app_config: Config,
    clock: ManualClock,
    releases: SlackEmulator,
    make_service: Callable[..., LiveService],
    flag_world: FlagWorld,
) -> Modals:
    """A service whose forms wait 0.2 s for their outcome (the tests hold the work longer)."""
    settings = aws_settings.model_copy(update={"slack_form_wait_s": 0.2})
    return Modals(make_service(settings, app_config, clock=clock, run_jobs=False), releases)


# -- a database failing after the work ------------------------------------------------------


def test_a_refusal_whose_view_cannot_be_released_is_still_shown_logged_and_counted(
    modals: Modals, live: LiveService, caplog: pytest.LogCaptureFixture
) -> None:
    view = opened_by(modals, "/deploy", user="U0CAROL")
    caplog.set_level(logging.INFO)
    with failing(live.runtime.engine, "UPDATE INBOUND_RECEIPTS", only=releasing_a_view):
        answer = modals.submit(view, {service.TARGET: PROD, service.TAG: "1.0.1"}, user="U0CAROL")
    assert answer["errors"][service.TARGET].startswith("Missing right")
    assert not modals.slack.get_view(view.id).closed  # type: ignore[union-attr]
    assert counted(live, "deploy", "refused") == 1
    assert metric(live, "opsbot_after_ack_failures_total") == 1
    [failed] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "releasing the view" in failed.getMessage()
    assert (failed.view_id, failed.slack_user, failed.modal) == (  # type: ignore[attr-defined]
        view.id,
        "U0CAROL",
        service.DEPLOY,
    )
    assert failed.exc_info is not None


def test_a_late_answer_the_outbox_cannot_take_is_logged_and_counted(
    hurried: Modals, caplog: pytest.LogCaptureFixture
) -> None:
    live = hurried.live
    view = opened_by(hurried, "/incident", "silence")
    caplog.set_level(logging.INFO)
    engine = live.runtime.engine
    with (
        held_work(engine) as (entered, go),
        failing(engine, "INSERT INTO DELIVERIES", only=lambda *_: in_modal_work()),
    ):
        answer = hurried.submit(view, {service.LASTS: "1h", service.REASON: "drill"})
        assert not answer  # closed: the outcome follows by message
        go.set()
        wait_for(lambda: metric(live, "opsbot_after_ack_failures_total") == 1)
    assert entered.is_set()
    assert counted(live, "silence", "refused") == 1 and counted(live, "silence", "late") == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, [(r.name, r.getMessage()) for r in errors]
    [failed] = errors
    assert "answering by message" in failed.getMessage()
    assert failed.view_id == view.id  # type: ignore[attr-defined]


def test_a_view_that_cannot_be_claimed_keeps_the_form_open_and_acts_on_the_next_submit(
    modals: Modals, live: LiveService, flag_world: FlagWorld
) -> None:
    view = opened_by(modals, "/flag")
    answers: dict[str, str | None] = {
        service.TARGET: STAGING,
        service.FLAG_NAME: "APPLE_PAY",
        service.FLAG_VERB: "on",
    }

    def claiming(_text: str, values: list[Any]) -> bool:
        return "slack.view" in values

    with failing(live.runtime.engine, "INSERT INTO INBOUND_RECEIPTS", only=claiming):
        answer = modals.submit(view, answers)
    assert "nothing was done" in answer["errors"][service.TARGET]
    assert counted(live, "flag", "failed") == 1
    assert flag_world.ssm_value("APPLE_PAY") == "false"
    assert not modals.slack.get_view(view.id).closed  # type: ignore[union-attr]
    assert not modals.submit(view, answers)
    assert flag_world.ssm_value("APPLE_PAY") == "true"


# -- the same view submitted twice ---------------------------------------------------------


def test_a_double_click_on_a_refused_form_shows_the_refusal_to_both_and_keeps_it_open(
    modals: Modals, live: LiveService
) -> None:
    view = opened_by(modals, "/deploy", user="U0CAROL")
    state = state_values(view.view, {service.TARGET: PROD, service.TAG: "1.0.1"})
    with held_work(live.runtime.engine) as (entered, go), ThreadPoolExecutor(2) as pool:
        first = pool.submit(modals.submit_state, view, state, user="U0CAROL")
        assert entered.wait(30)  # the first is being worked on ...
        second = pool.submit(modals.submit_state, view, state, user="U0CAROL")
        wait_for(lambda: counted(live, "deploy", "duplicate") == 1)  # ... when the second comes
        go.set()
        answers = [first.result(), second.result()]
    for answer in answers:
        assert answer["errors"][service.TARGET].startswith("Missing right"), answers
    assert not modals.slack.get_view(view.id).closed  # type: ignore[union-attr]
    assert counted(live, "deploy", "refused") == 1


def test_a_view_another_instance_works_on_keeps_the_form_open_for_its_answer(
    modals: Modals, live: LiveService
) -> None:
    view = opened_by(modals, "/deploy")
    elsewhere = SubmittedViews(sessions=live.runtime.sessions, clock=live.runtime.clock)
    assert elsewhere.claim(view.id)  # another instance's submission of the same view
    answer = modals.submit(view, {service.TARGET: STAGING, service.TAG: "1.0.1"})
    assert "the first is being worked on" in answer["errors"][service.TARGET]
    assert not modals.slack.get_view(view.id).closed  # type: ignore[union-attr]
    with live.runtime.sessions() as db:
        assert db.scalars(sa.select(Deployment)).all() == []
    assert counted(live, "deploy", "duplicate") == 1


# -- work that raised part-way, and the process stopping ----------------------------------


def incidents_declared(live: LiveService) -> int:
    with live.runtime.sessions() as db:
        return len(db.scalars(sa.select(Incident)).all())


def test_work_that_raised_after_paging_says_part_may_be_done_and_is_not_done_again(
    modals: Modals, live: LiveService
) -> None:
    view = opened_by(modals, "/incident", "declare")
    # As at a SIGTERM: the declaration commits and pages, then queueing its channel raises.
    live.runtime.after_ack.stop()
    answer = modals.submit(view, DECLARE)
    said = answer["errors"][service.SUMMARY]
    assert "Part of it may have been done" in said and "nothing was done" not in said
    assert incidents_declared(live) == 1
    assert counted(live, "incident_declare", "failed") == 1
    again = modals.submit(view, DECLARE)  # the person submits the same form again
    assert "went wrong part-way" in again["errors"][service.SUMMARY]
    assert incidents_declared(live) == 1


def test_stopping_finishes_a_late_submission_before_the_lane_behind_acks(
    hurried: Modals,
) -> None:
    live = hurried.live
    view = opened_by(hurried, "/incident", "declare")
    with held_work(live.runtime.engine) as (entered, go):
        assert not hurried.submit(view, DECLARE)  # the form closed; the work waits
        assert entered.is_set()
        live.server.should_exit = True  # SIGTERM
        live.thread.join(3)  # the runtime stops meanwhile, or waits for the submission
        go.set()
        live.thread.join(30)
    assert not live.thread.is_alive()
    assert incidents_declared(live) == 1
    assert counted(live, "incident_declare", "done") == 1
    assert counted(live, "incident_declare", "failed") == 0
    assert metric(live, "opsbot_after_ack_failures_total") == 0
    assert deliveries_saying(live, "went wrong") == []


# -- a refusal answered by message ----------------------------------------------------------


def test_a_late_field_error_is_answered_as_escaped_mrkdwn(hurried: Modals) -> None:
    opened = hurried.command("/incident", "silence")
    assert opened.view is not None
    starts = "<!channel><https://e.vil|a>"
    with held_work(hurried.live.runtime.engine) as (_entered, go):
        answer = hurried.submit(
            opened.view,
            {
                service.SILENCE_ROUTE: "prod",
                service.STARTS: starts,
                service.LASTS: "1h",
                service.REASON: "db upgrade",
            },
        )
        assert not answer  # closed before the refusal came: it follows by message
        go.set()
        said = hurried.answered(opened.response_url)
    assert "is not a time" in said
    assert "&lt;!channel&gt;" in said and "<!channel>" not in said
    assert "<https://e.vil" not in said
