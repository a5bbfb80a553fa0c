"""Modals: `/deploy`, `/flag`, `/dbrole`, `/incident declare` and `/incident silence`
typed bare open a form.

Each modal is the form of a typed command (bot/modals/service.py) and a
conversion of its submission into the command that typed text parses into,
handed to the area's own `run` (or domain entry): rights, locks, freezes,
confirmations and audit are the typed command's. Opening, submitting and
searching are handlers/modal_views.py's. Another modal plugs in with
`register_modal` before `register` runs.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from bot import commands
from bot.apps.access import FORCE_DEPLOYS
from bot.apps.errors import AppError
from bot.dbroles.errors import DbRoleError
from bot.deploys.errors import DeployError
from bot.deploys.models import DEPLOY
from bot.flags.errors import FlagError
from bot.flags.requests import SET
from bot.home import render as home_render
from bot.home.service import FROM_HOME
from bot.incidents.actions import Requester
from bot.incidents.errors import IncidentError
from bot.maintenance.errors import MaintenanceError
from bot.modals import render, service
from bot.modals.errors import FieldErrors
from bot.rights.errors import RightMissing
from bot.runtime import Runtime
from handlers import dbroles, deploys, flags, modal_views
from handlers.command_text import Usage, command_words
from handlers.modal_views import Modal, Submission
from handlers.routing import Routes

# callback_id -> modal. A search field's name is the action_id its `options` requests are
# routed by: it must be unique across modals.
MODALS: dict[str, Modal] = {}


def register_modal(callback_id: str, modal: Modal) -> None:
    """Add a modal (before `register` runs): its command typed bare opens it."""
    MODALS[callback_id] = modal


# -- the four modals: each submission becomes the typed command ---------------------------


def _target(submission: Submission) -> tuple[str, str]:
    return service.split_target(submission.text(service.TARGET))


def _deploy(runtime: Runtime, submission: Submission) -> str | dict[str, Any]:
    app, env = _target(submission)
    command = deploys.Command(
        DEPLOY,
        app=app,
        env=env,
        tag=submission.text(service.TAG),
        force_reason=submission.values.get(service.FORCE),
    )
    return deploys.run(
        runtime, command, user_id=submission.user_id, channel_id=submission.origin.channel_id
    )


def _flag(runtime: Runtime, submission: Submission) -> str | dict[str, Any]:
    app, env = _target(submission)
    verb = submission.text(service.FLAG_VERB)
    words = command_words(submission.text(service.ATTRIBUTES))
    if verb == SET and not words:
        raise FieldErrors({service.ATTRIBUTES: "Set needs attributes: rollout_percent=25 …"})
    if verb != SET and words:
        raise FieldErrors({service.ATTRIBUTES: "Attributes are only for Set: leave this empty."})
    try:
        attributes = flags.parse_attributes(words)
    except Usage as exc:
        raise FieldErrors(
            {service.ATTRIBUTES: render.plain_error(str(exc))}, message=str(exc)
        ) from exc
    command = flags.Command(
        verb, app=app, env=env, flag=submission.text(service.FLAG_NAME), attributes=attributes
    )
    return flags.run(
        runtime, command, user_id=submission.user_id, channel_id=submission.origin.channel_id
    )


def _dbrole(runtime: Runtime, submission: Submission) -> str:
    app, env = _target(submission)
    command = dbroles.Command(submission.text(service.DBROLE_VERB), app=app, env=env)
    return dbroles.run(
        runtime, command, user_id=submission.user_id, channel_id=submission.origin.channel_id
    )


def _declare(runtime: Runtime, submission: Submission) -> None:
    requester = Requester(
        slack_user_id=submission.user_id,
        via="modal",
        response_url=submission.origin.response_url,
    )
    try:
        declared = runtime.incident_actions.declare(
            summary=submission.text(service.SUMMARY),
            severity=submission.values.get(service.SEVERITY),
            route_name=submission.values.get(service.ROUTE),
            requester=requester,
            refusal_raises=True,
        )
    except IncidentError as exc:
        if isinstance(exc.__cause__, RightMissing):
            raise
        raise FieldErrors({service.ROUTE: render.plain_error(str(exc))}, message=str(exc)) from exc
    if declared is not None:
        # As the typed `/incident declare` does; queued, so the form closes on the
        # declaration, not on Slack's channel calls.
        runtime.after_ack.run(
            "start the declared incident's channel",
            partial(
                runtime.incident_channels.after_declare, incident_id=declared, requester=requester
            ),
            response_url=requester.response_url,
        )


def _silence(runtime: Runtime, submission: Submission) -> None:
    windows = runtime.maintenance
    if windows is None:
        raise FieldErrors({service.SILENCE_ROUTE: "Maintenance windows are not available here."})
    request = service.silence_request(submission.values, now=runtime.clock.now())
    requester = Requester(
        slack_user_id=submission.user_id,
        # Opened from Home: its refusal is audited as Home's, and Home lists it.
        via=FROM_HOME if submission.origin.home else "modal",
        response_url=submission.origin.response_url,
    )
    windows.create(request=request, requester=requester, refusal_raises=True)


register_modal(
    service.DEPLOY,
    Modal(
        "/deploy",
        None,
        lambda runtime: service.deploy_form(runtime.config),
        _deploy,
        (AppError, DeployError),
        subject=service.TAG,
        right=commands.Right.DEPLOY,
        right_fields={FORCE_DEPLOYS: service.FORCE},
        searches={service.TAG: service.search_tags},
    ),
)
register_modal(
    service.FLAG,
    Modal(
        "/flag",
        None,
        lambda runtime: service.flag_form(runtime.config),
        _flag,
        (AppError, FlagError, DeployError),
        subject=service.FLAG_NAME,
        right=commands.Right.DEPLOY,
        searches={service.FLAG_NAME: service.flag_choices},
    ),
)
register_modal(
    service.DBROLE,
    Modal(
        "/dbrole",
        None,
        lambda runtime: service.dbrole_form(runtime.config),
        _dbrole,
        (AppError, DbRoleError),
        subject=service.DBROLE_VERB,
        right=commands.Right.DEPLOY,
    ),
)
register_modal(
    service.DECLARE,
    Modal(
        "/incident",
        "declare",
        lambda runtime: service.declare_form(runtime.config),
        _declare,
        (IncidentError,),
        subject=service.SUMMARY,
        right=commands.Right.DECLARE,
    ),
)


register_modal(
    service.SILENCE,
    Modal(
        "/incident",
        "silence",
        lambda runtime: service.silence_form(runtime.config),
        _silence,
        (MaintenanceError,),
        subject=service.SILENCE_ROUTE,
        right=commands.Right.SILENCE,
    ),
)


def register(routes: Routes, runtime: Runtime) -> None:
    """Register before the commands' own listeners: a bare command is the modal's."""
    modal_views.register(routes, runtime, MODALS)
    # App Home's "Plan a maintenance window…" button opens the Silence form.
    plan = modal_views.opener(runtime, service.SILENCE, MODALS[service.SILENCE])
    routes.action(home_render.PLAN_WINDOW)(plan)
