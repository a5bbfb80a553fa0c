"""The modals of `/deploy`, `/flag`, `/dbrole`, `/incident declare` and `/incident silence`,
through Bolt and the emulator.

Each test types a bare command as a person would, reads the modal the bot
opened in the Slack emulator, and submits it signed as Slack does; effects are
asserted where they land (ECS through moto, SSM, the database), refusals on the
form's fields with nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot.approvals.models import PendingAction
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.config import Config
from bot.deploys.models import Deployment
from bot.incidents.models import Incident
from bot.maintenance.models import MaintenanceWindow
from bot.modals import service
from bot.runtime import Runtime
from bot.settings import Settings
from sandbox import slack_requests, slack_view_requests
from sandbox.slack import SlackEmulator
from sandbox.slack_view_requests import state_values
from sandbox.slack_views import OpenView
from tests.conftest import SLACK_SIGNING_SECRET
from tests.deploys.world import REPOSITORY, World
from tests.flags.conftest import FlagWorld
from tests.modals.conftest import Modals
from tests.support import LiveService, wait_for

STAGING = "api/staging"


def options(view: OpenView, block_id: str) -> list[str]:
    block = next(b for b in view.view["blocks"] if b.get("block_id") == block_id)
    return [o["value"] for o in block["element"].get("options", [])]


def deployments(runtime: Runtime) -> list[Deployment]:
    with runtime.sessions() as db:
        return list(db.scalars(sa.select(Deployment)))


def audits(runtime: Runtime, action: str) -> list[AuditRecord]:
    with runtime.sessions() as db:
        return list(db.scalars(sa.select(AuditRecord).where(AuditRecord.action == action)))


def running_image(world: World, cluster: str) -> str:
    task_definition = world.describe_task_definition(world.service_task_definition(cluster))
    return str(task_definition["containerDefinitions"][0]["image"])


def wait_until_running(world: World, cluster: str, tag: str) -> None:
    """The deploy may outlive the submission's wait on a loaded machine (then it is answered
    by message), so the test waits for the service rather than reading it once."""
    wait_for(lambda: running_image(world, cluster) == world.image(tag))


def counted(live: LiveService, modal: str, outcome: str) -> float:
    registry = live.runtime.metrics.registry
    value = registry.get_sample_value("opsbot_modals_total", {"modal": modal, "outcome": outcome})
    return float(value or 0)


def open_modal(modals: Modals, name: str, text: str = "", *, user: str = "U0ALICE") -> OpenView:
    opened = modals.command(name, text, user=user)
    assert opened.view is not None, opened.ack
    return opened.view


# -- opening --------------------------------------------------------------------------------


def test_each_bare_command_opens_its_modal_with_the_configured_choices(modals: Modals) -> None:
    deploy = open_modal(modals, "/deploy")
    assert deploy.view["callback_id"] == service.DEPLOY
    assert options(deploy, service.TARGET) == [STAGING, "api/prod"]
    tag = next(b for b in deploy.view["blocks"] if b.get("block_id") == service.TAG)
    assert tag["element"]["type"] == "external_select"

    flag = open_modal(modals, "/flag")
    assert flag.view["callback_id"] == service.FLAG
    assert options(flag, service.TARGET) == [STAGING, "api/prod"]
    assert options(flag, service.FLAG_VERB) == ["on", "off", "set"]

    dbrole = open_modal(modals, "/dbrole")
    assert options(dbrole, service.TARGET) == [STAGING]  # the one with a role manager
    assert options(dbrole, service.DBROLE_VERB) == ["check", "provision"]

    declare = open_modal(modals, "/incident", "declare")
    assert declare.view["callback_id"] == service.DECLARE
    assert options(declare, service.SEVERITY) == ["critical", "error", "warning", "info"]
    assert options(declare, service.ROUTE) == ["prod"]  # the routes that can page


def test_commands_with_arguments_are_typed_commands_not_modals(modals: Modals) -> None:
    opened = modals.command("/deploy", "help", opens=False)
    assert opened.view is None
    assert "/deploy" in str(opened.ack)
    opened = modals.command("/incident", "", opens=False)
    assert opened.view is None  # bare /incident is its help; `declare` opens the modal


def test_an_expired_trigger_answers_with_the_typed_usage(modals: Modals, live: LiveService) -> None:
    opened = modals.command("/deploy", expire=True, opens=False)
    assert opened.view is None
    text = modals.answered(opened.response_url)
    assert "Type the command instead" in text
    assert "/deploy &lt;app&gt; &lt;env&gt; &lt;tag&gt;" in text
    opened = modals.command("/incident", "declare", expire=True, opens=False)
    assert "/incident declare &lt;summary&gt;" in modals.answered(opened.response_url)
    assert modals.slack.open_views() == []


def test_the_answer_to_a_bare_command_does_not_wait_for_views_open(modals: Modals) -> None:
    # Slack is slow to open the form: the command is answered first all the same.
    modals.slack.faults.hang_next(1, seconds=1.5, calls=("views.open",))
    opened = modals.command("/deploy", opens=False)
    assert opened.view is None  # answered while views.open was still on its way
    wait_for(lambda: modals.slack.open_views("U0ALICE"))
    [view] = modals.slack.open_views("U0ALICE")
    assert view.view["callback_id"] == service.DEPLOY


# -- searching ------------------------------------------------------------------------------


def test_tag_search_lists_the_ecr_tags_that_start_with_what_was_typed(modals: Modals) -> None:
    view = open_modal(modals, "/deploy")
    chosen = {service.TARGET: STAGING}
    assert modals.suggest(view, service.TAG, "", chosen) == [
        "1.0.4",
        "1.0.3",
        "1.0.2",
        "1.0.1",
        "1.0.0",
    ]
    assert modals.suggest(view, service.TAG, "1.0.3", chosen) == ["1.0.3"]
    assert modals.suggest(view, service.TAG, "2.", chosen) == []
    # No app environment chosen yet, or one the form never offered: nothing to search.
    assert modals.suggest(view, service.TAG, "1", {}) == []
    assert modals.suggest(view, service.TAG, "1", {service.TARGET: "evil/prod"}) == []


def test_flag_search_lists_the_flags_of_either_backend(modals: Modals) -> None:
    view = open_modal(modals, "/flag")
    assert modals.suggest(view, service.FLAG_NAME, "", {service.TARGET: STAGING}) == [
        "APPLE_PAY",
        "NEW_CHECKOUT_FLOW",
    ]
    assert modals.suggest(view, service.FLAG_NAME, "new", {service.TARGET: "api/prod"}) == [
        "new_checkout_flow"
    ]


# -- submitting -----------------------------------------------------------------------------


def test_a_deploy_submitted_from_the_modal_deploys_like_the_typed_command(
    modals: Modals, live: LiveService, world: World
) -> None:
    opened = modals.command("/deploy")
    assert opened.view is not None
    answer = modals.submit(opened.view, {service.TARGET: STAGING, service.TAG: "1.0.1"})
    assert not answer  # an empty ack: the modal closes
    assert modals.slack.open_views() == []
    wait_until_running(world, "staging", "1.0.1")
    text = modals.answered(opened.response_url)
    assert "Deploy #1" in text and "started" in text
    [deployment] = deployments(live.runtime)
    assert (deployment.actor, deployment.tag) == ("U0ALICE", "1.0.1")
    assert [a.outcome for a in audits(live.runtime, "deploy.start")] == ["ok"]
    assert counted(live, "deploy", "opened") == 1 and counted(live, "deploy", "done") == 1


def test_a_double_submit_acts_once(modals: Modals, live: LiveService, world: World) -> None:
    view = open_modal(modals, "/deploy")
    answers = {service.TARGET: STAGING, service.TAG: "1.0.2"}
    state = state_values(view.view, answers)
    first = modals.submit_state(view, state)
    second = modals.submit_state(view, state)  # the same view, clicked again
    assert not first and not second
    wait_until_running(world, "staging", "1.0.2")
    assert len(deployments(live.runtime)) == 1
    assert counted(live, "deploy", "duplicate") == 1


def test_a_double_click_sending_both_submissions_at_once_acts_once(
    modals: Modals, live: LiveService, world: World
) -> None:
    view = open_modal(modals, "/deploy")
    state = state_values(view.view, {service.TARGET: STAGING, service.TAG: "1.0.1"})
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: modals.submit_state(view, state), range(2)))
    assert answers == [None, None]
    # On a loaded machine the work may outlive the submission's wait (answered by message).
    wait_for(lambda: len(deployments(live.runtime)) == 1)
    assert len(deployments(live.runtime)) == 1
    assert len(audits(live.runtime, "deploy.start")) == 1


def test_an_unknown_tag_is_shown_on_the_tag_field_and_nothing_changes(
    modals: Modals, live: LiveService, world: World
) -> None:
    before = world.service_task_definition("staging")
    view = open_modal(modals, "/deploy")
    answer = modals.submit(view, {service.TARGET: STAGING, service.TAG: "9.9.9"})
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {service.TAG}
    assert "There is no image 9.9.9 in api" in answer["errors"][service.TAG]
    assert "`" not in answer["errors"][service.TAG]  # plain text, not mrkdwn
    assert modals.slack.get_view(view.id).errors == answer["errors"]  # type: ignore[union-attr]
    assert deployments(live.runtime) == []
    assert world.service_task_definition("staging") == before
    # The form stays open: corrected, the same view goes through.
    answer = modals.submit(view, {service.TARGET: STAGING, service.TAG: "1.0.1"})
    assert not answer
    wait_until_running(world, "staging", "1.0.1")


def test_a_tag_deleted_while_the_modal_was_open_is_shown_on_the_tag_field(
    modals: Modals, live: LiveService, world: World
) -> None:
    view = open_modal(modals, "/deploy")
    assert "1.0.2" in modals.suggest(view, service.TAG, "1.0.2", {service.TARGET: STAGING})
    world.aws("ecr").batch_delete_image(repositoryName=REPOSITORY, imageIds=[{"imageTag": "1.0.2"}])
    answer = modals.submit(view, {service.TARGET: STAGING, service.TAG: "1.0.2"})
    assert "There is no image 1.0.2" in answer["errors"][service.TAG]
    assert deployments(live.runtime) == []


def test_a_scan_refusal_is_shown_on_the_tag_field(modals: Modals, live: LiveService) -> None:
    view = open_modal(modals, "/deploy")
    answer = modals.submit(view, {service.TARGET: STAGING, service.TAG: "1.0.3"})
    assert "CRITICAL" in answer["errors"][service.TAG]
    assert deployments(live.runtime) == []


def test_a_missing_right_is_shown_on_the_first_field_naming_it(
    modals: Modals, live: LiveService, world: World
) -> None:
    before = world.service_task_definition("prod")
    view = open_modal(modals, "/deploy", user="U0CAROL")
    answer = modals.submit(view, {service.TARGET: "api/prod", service.TAG: "1.0.1"}, user="U0CAROL")
    error = answer["errors"][service.TARGET]
    assert error.startswith("Missing right (being a deployer of an app environment)")
    assert "You may not deploy to api/prod" in error
    assert deployments(live.runtime) == []
    assert world.service_task_definition("prod") == before
    [refusal] = audits(live.runtime, "deploy.request")
    assert (refusal.actor, refusal.outcome) == ("U0CAROL", "refused")


@pytest.mark.parametrize(
    ("state", "field", "says"),
    [
        # A value longer than the field allows.
        (
            {
                service.TARGET: {
                    service.TARGET: {"type": "static_select", "selected_option": {"value": STAGING}}
                },
                service.TAG: {
                    service.TAG: {
                        "type": "external_select",
                        "selected_option": {"value": "1" * 5000},
                    }
                },
            },
            service.TAG,
            "longer than 128",
        ),
        # A choice the form never offered.
        (
            {
                service.TARGET: {
                    service.TARGET: {
                        "type": "static_select",
                        "selected_option": {"value": "evil/prod"},
                    }
                },
                service.TAG: {
                    service.TAG: {"type": "external_select", "selected_option": {"value": "1.0.1"}}
                },
            },
            service.TARGET,
            "not one of the choices offered",
        ),
        # A tag that is no tag.
        (
            {
                service.TARGET: {
                    service.TARGET: {"type": "static_select", "selected_option": {"value": STAGING}}
                },
                service.TAG: {
                    service.TAG: {
                        "type": "external_select",
                        "selected_option": {"value": "--force"},
                    }
                },
            },
            service.TAG,
            "not one of the choices offered",
        ),
        # Wrong types: a number for a choice, a list for an option.
        (
            {
                service.TARGET: {
                    service.TARGET: {"type": "static_select", "selected_option": {"value": 7}}
                },
                service.TAG: {
                    service.TAG: {"type": "external_select", "selected_option": ["1.0.1"]}
                },
            },
            service.TARGET,
            "not text",
        ),
        # Text where a select was.
        (
            {
                service.TARGET: {service.TARGET: {"type": "plain_text_input", "value": STAGING}},
                service.TAG: {
                    service.TAG: {"type": "external_select", "selected_option": {"value": "1.0.1"}}
                },
            },
            service.TARGET,
            "not a value Slack sends",
        ),
        # Nothing chosen.
        ({}, service.TARGET, "is required"),
        # No values at all.
        ("nonsense", service.TARGET, "without its values"),
    ],
)
def test_hostile_view_state_is_an_error_on_the_field_and_changes_nothing(
    modals: Modals, live: LiveService, world: World, state: Any, field: str, says: str
) -> None:
    before = world.service_task_definition("staging")
    view = open_modal(modals, "/deploy")
    answer = modals.submit_state(view, state)
    assert answer["response_action"] == "errors"
    assert says in answer["errors"][field]
    assert deployments(live.runtime) == []
    assert audits(live.runtime, "deploy.request") == []
    assert world.service_task_definition("staging") == before


def test_a_flag_submitted_from_the_modal_flips_it_like_the_typed_command(
    modals: Modals, live: LiveService, flag_world: FlagWorld
) -> None:
    assert flag_world.ssm_value("APPLE_PAY") == "false"
    opened = modals.command("/flag")
    assert opened.view is not None
    answer = modals.submit(
        opened.view,
        {service.TARGET: STAGING, service.FLAG_NAME: "APPLE_PAY", service.FLAG_VERB: "on"},
    )
    assert not answer
    wait_for(lambda: flag_world.ssm_value("APPLE_PAY") == "true")
    assert "APPLE_PAY" in modals.answered(opened.response_url)


def test_flag_refusals_show_on_their_fields(
    modals: Modals, live: LiveService, flag_world: FlagWorld
) -> None:
    view = open_modal(modals, "/flag")
    answer = modals.submit(
        view, {service.TARGET: STAGING, service.FLAG_NAME: "NO_SUCH", service.FLAG_VERB: "on"}
    )
    assert "NO_SUCH" in answer["errors"][service.FLAG_NAME]
    answer = modals.submit(
        view,
        {
            service.TARGET: STAGING,
            service.FLAG_NAME: "APPLE_PAY",
            service.FLAG_VERB: "on",
            service.ATTRIBUTES: "percent=5",
        },
    )
    assert "only for Set" in answer["errors"][service.ATTRIBUTES]
    answer = modals.submit(
        view,
        {
            service.TARGET: "api/prod",
            service.FLAG_NAME: "banner",
            service.FLAG_VERB: "set",
            service.ATTRIBUTES: "nonsense",
        },
    )
    # The typed command's own usage answer, as plain text.
    assert "nonsense is not attribute=value" in answer["errors"][service.ATTRIBUTES]
    assert flag_world.ssm_value("APPLE_PAY") == "false"
    assert flag_world.versions() == [1]


def test_a_submission_past_its_wait_closes_the_form_and_the_refusal_follows_by_message(
    aws_settings: Settings,
    app_config: Config,
    clock: ManualClock,
    releases: SlackEmulator,
    make_service: Callable[..., LiveService],
    flag_world: FlagWorld,
) -> None:
    hurried = aws_settings.model_copy(update={"slack_form_wait_s": 0.001})
    modals = Modals(make_service(hurried, app_config, clock=clock, run_jobs=False), releases)
    opened = modals.command("/flag")
    assert opened.view is not None
    answer = modals.submit(
        opened.view,
        {service.TARGET: STAGING, service.FLAG_NAME: "NO_SUCH", service.FLAG_VERB: "on"},
    )
    assert not (isinstance(answer, dict) and answer.get("errors"))  # the form closes
    assert "NO_SUCH" in modals.answered(opened.response_url)
    assert flag_world.versions() == [1]


def test_dbrole_provision_needs_the_deploy_right_shown_on_the_first_field(
    modals: Modals, live: LiveService
) -> None:
    view = open_modal(modals, "/dbrole", user="U0CAROL")
    answer = modals.submit(
        view, {service.TARGET: STAGING, service.DBROLE_VERB: "provision"}, user="U0CAROL"
    )
    assert answer["errors"][service.TARGET].startswith("Missing right")
    assert "You may not provision" in answer["errors"][service.TARGET]


def test_an_incident_declared_from_the_modal_opens_and_pages(
    modals: Modals, live: LiveService
) -> None:
    opened = modals.command("/incident", "declare")
    assert opened.view is not None
    answer = modals.submit(
        opened.view,
        {service.SUMMARY: "Checkout is down", service.SEVERITY: "critical", service.ROUTE: "prod"},
    )
    assert not answer
    with live.runtime.sessions() as db:
        [incident] = db.scalars(sa.select(Incident)).all()
    assert (incident.title, incident.severity, incident.route_name) == (
        "Checkout is down",
        "critical",
        "prod",
    )
    assert "Declared incident" in modals.answered(opened.response_url)


def test_declaring_without_the_right_is_shown_on_the_first_field(
    modals: Modals, live: LiveService
) -> None:
    view = open_modal(modals, "/incident", "declare", user="U0BOB")
    answer = modals.submit(view, {service.SUMMARY: "Checkout is down"}, user="U0BOB")
    error = answer["errors"][service.SUMMARY]
    assert error.startswith("Missing right (declare on route prod)")
    with live.runtime.sessions() as db:
        assert db.scalars(sa.select(Incident)).all() == []
    [refusal] = audits(live.runtime, "incident.declare")
    assert (refusal.actor, refusal.outcome) == ("U0BOB", "refused")


def test_hostile_searches_and_unknown_forms_change_nothing(
    modals: Modals, live: LiveService, world: World
) -> None:
    view = open_modal(modals, "/deploy")
    chosen = {service.TARGET: STAGING}
    assert modals.suggest(view, service.TAG, "1" * 100_000, chosen) == []
    assert modals.suggest(view, service.TAG, "%00<script>", chosen) == []
    # A submission of a form opsbot never opened has no listener: Bolt answers 404.
    forged = {**modals.api_view(view), "callback_id": "opsbot.drop_tables"}
    body = slack_view_requests.view_submission(
        forged, user_id="U0ALICE", values=state_values(view.view, {service.TARGET: STAGING})
    )
    headers = slack_requests.signed_headers(SLACK_SIGNING_SECRET, body)
    assert live.post("/slack/events", content=body, headers=headers).status_code == 404
    assert deployments(live.runtime) == []


def test_a_protected_flag_from_the_modal_asks_for_its_confirmation_like_the_typed_command(
    modals: Modals, live: LiveService, flag_world: FlagWorld
) -> None:
    opened = modals.command("/flag")
    assert opened.view is not None
    answer = modals.submit(
        opened.view,
        {service.TARGET: "api/prod", service.FLAG_NAME: "apple_pay", service.FLAG_VERB: "on"},
    )
    assert not answer
    text = modals.answered(opened.response_url)
    assert "`api/prod` is protected: request #1 waits for" in text
    with live.runtime.sessions() as db:
        [pending] = db.scalars(sa.select(PendingAction)).all()
    assert pending.requested_by == "U0ALICE"
    assert flag_world.versions() == [1]  # nothing written before the confirmation


# -- maintenance windows ----------------------------------------------------------------


def windows(runtime: Runtime) -> list[MaintenanceWindow]:
    with runtime.sessions() as db:
        return list(db.scalars(sa.select(MaintenanceWindow)))


def test_a_window_made_from_the_modal_holds_the_route_like_the_typed_command(
    modals: Modals, live: LiveService
) -> None:
    opened = modals.command("/incident", "silence")
    assert opened.view is not None
    assert opened.view.view["callback_id"] == service.SILENCE
    assert "prod" in options(opened.view, service.SILENCE_ROUTE)
    answer = modals.submit(
        opened.view,
        {
            service.SILENCE_ROUTE: "prod",
            service.STARTS: "in 30m",
            service.LASTS: "2h",
            service.REASON: "Database failover drill",
        },
    )
    assert not answer
    [window] = windows(live.runtime)
    assert (window.kind, window.pattern, window.created_by) == ("route", "prod", "U0ALICE")
    assert window.ends_at - window.starts_at == timedelta(hours=2)
    assert window.reason == "Database failover drill"
    assert "Maintenance window #" in modals.answered(opened.response_url)
    [made] = audits(live.runtime, "maintenance.create")
    assert (made.actor, made.outcome) == ("U0ALICE", "ok")
    assert counted(live, "silence", "done") == 1


@pytest.mark.parametrize(
    ("answers", "field", "says"),
    [
        ({service.REASON: "drill"}, service.SILENCE_ROUTE, "one of the two"),
        (
            {service.SILENCE_ROUTE: "prod", service.SILENCE_GLOB: "prod-*", service.REASON: "x"},
            service.SILENCE_GLOB,
            "one of the two",
        ),
        ({service.SILENCE_GLOB: "prod db", service.REASON: "x"}, service.SILENCE_GLOB, "not a"),
        (
            {service.SILENCE_ROUTE: "prod", service.STARTS: "yesterday", service.REASON: "x"},
            service.STARTS,
            "is not a time",
        ),
        (
            {service.SILENCE_ROUTE: "prod", service.STARTS: "in 40d", service.REASON: "x"},
            service.STARTS,
            "ahead at most",
        ),
    ],
)
def test_a_window_that_does_not_parse_is_shown_on_its_field_and_stores_nothing(
    modals: Modals, live: LiveService, answers: dict[str, str], field: str, says: str
) -> None:
    view = open_modal(modals, "/incident", "silence")
    answer = modals.submit(view, {service.LASTS: "1h", **answers})
    assert says in answer["errors"][field]
    assert windows(live.runtime) == []
    assert audits(live.runtime, "maintenance.create") == []


def test_a_window_without_the_right_is_shown_on_the_first_field_and_audited(
    modals: Modals, live: LiveService
) -> None:
    view = open_modal(modals, "/incident", "silence", user="U0BOB")
    answer = modals.submit(
        view,
        {service.SILENCE_ROUTE: "prod", service.LASTS: "1h", service.REASON: "drill"},
        user="U0BOB",
    )
    assert answer["errors"][service.SILENCE_ROUTE].startswith("Missing right")
    assert windows(live.runtime) == []
    [refusal] = audits(live.runtime, "maintenance.create")
    assert (refusal.actor, refusal.outcome) == ("U0BOB", "refused")
