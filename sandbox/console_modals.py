"""The console's modals: what the Slack emulator has open, searched and submitted as Slack would.

A modal the bot opened (views.open) is shown to the person the console acts
as, simply: each input block's label, its select's options or its text box,
and the errors the bot put under a field. Searching an external select sends
a signed `block_suggestion`, submitting a signed `view_submission`, both to
/slack/events; the bot's answer is applied by the emulator as Slack applies it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import slack_view_requests, world
from sandbox.console import ConsoleActions, ConsoleError
from sandbox.slack_views import OpenView

Handler = Callable[[Request], Awaitable[Response]]
ANSWER_MAX = 3000  # what the console accepts as one field's answer


def _text_of(obj: Any) -> str:
    return str(obj.get("text") or "") if isinstance(obj, dict) else ""


def _field(block: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    element = block.get("element") or {}
    block_id = str(block.get("block_id") or "")
    initial = element.get("initial_option") or {}
    return {
        "block_id": block_id,
        "label": _text_of(block.get("label")),
        "hint": _text_of(block.get("hint")),
        "optional": bool(block.get("optional")),
        "type": str(element.get("type") or ""),
        "action_id": str(element.get("action_id") or block_id),
        "multiline": bool(element.get("multiline")),
        "placeholder": _text_of(element.get("placeholder")),
        "initial": initial.get("value") or element.get("initial_value") or "",
        "options": [
            {"value": o.get("value"), "label": _text_of(o.get("text"))}
            for o in element.get("options") or []
        ],
        "error": errors.get(block_id, ""),
    }


def shown(view: OpenView) -> dict[str, Any]:
    """A view as the console draws it."""
    data = view.view
    return {
        "id": view.id,
        "callback_id": data.get("callback_id", ""),
        "title": _text_of(data.get("title")),
        "submit": _text_of(data.get("submit")) or "Submit",
        "close": _text_of(data.get("close")) or "Cancel",
        "intro": [
            _text_of(b.get("text")) for b in data.get("blocks") or [] if b.get("type") == "section"
        ],
        "fields": [
            _field(b, view.errors) for b in data.get("blocks") or [] if b.get("type") == "input"
        ],
    }


class ConsoleModals:
    def __init__(self, actions: ConsoleActions) -> None:
        self.actions = actions
        self.slack = actions.sandbox.slack

    def _user(self, user_id: str) -> str:
        if not any(u.slack_id == user_id for u in world.USERS):
            raise ConsoleError(f"unknown user {user_id!r}")
        return user_id

    def _view(self, view_id: str, user_id: str) -> OpenView:
        view = self.slack.get_view(view_id)
        if view is None or view.closed or view.user != self._user(user_id):
            raise ConsoleError("no such modal open for this person")
        return view

    def _answers(self, raw: Any) -> dict[str, str | None]:
        if not isinstance(raw, dict):
            raise ConsoleError("answers: an object of field → value is needed")
        answers: dict[str, str | None] = {}
        for key, value in raw.items():
            if value is not None and not isinstance(value, str):
                raise ConsoleError(f"answers.{key}: a string is needed")
            answers[str(key)] = value[:ANSWER_MAX] if value else None
        return answers

    def state(self, user_id: str) -> dict[str, Any]:
        views = self.slack.open_views(self._user(user_id))
        return {"modals": [shown(v) for v in views]}

    def options(self, body: dict[str, Any]) -> dict[str, Any]:
        view = self._view(str(body.get("view_id")), str(body.get("user")))
        payload = slack_view_requests.block_suggestion(
            view.as_api("T0000", "A0OPSBOT"),
            user_id=view.user,
            action_id=str(body.get("action_id") or "")[:255],
            value=str(body.get("value") or "")[:ANSWER_MAX],
            values=slack_view_requests.state_values(view.view, self._answers(body.get("answers"))),
        )
        answer = self.actions._post_slack(payload)
        data = answer.json() if answer.status_code == 200 and answer.content else {}
        options = data.get("options") if isinstance(data, dict) else None
        return {
            "options": [
                {"value": o.get("value"), "label": _text_of(o.get("text"))}
                for o in options or []
                if isinstance(o, dict)
            ]
        }

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        view = self._view(str(body.get("view_id")), str(body.get("user")))
        values = slack_view_requests.state_values(view.view, self._answers(body.get("answers")))
        payload = slack_view_requests.view_submission(
            view.as_api("T0000", "A0OPSBOT"), user_id=view.user, values=values
        )
        interaction = self.actions._record("modal", view.user, f"submit {shown(view)['title']}")
        answer = self.actions._post_slack(payload)
        interaction.status = answer.status_code
        data: dict[str, Any] | None = None
        if answer.status_code == 200 and answer.content:
            parsed = answer.json()
            data = parsed if isinstance(parsed, dict) else None
        self.slack.answer_submission(view.id, data)
        errors = (data or {}).get("errors") or {}
        interaction.answer = "; ".join(str(e) for e in errors.values()) or "closed"
        return {"status": answer.status_code, "errors": errors}

    def close(self, body: dict[str, Any]) -> dict[str, Any]:
        view = self._view(str(body.get("view_id")), str(body.get("user")))
        self.slack.close_view(view.id)
        return {"closed": view.id}


def routes(
    actions: ConsoleActions,
    guarded: Callable[[Handler], Handler],
    api: Callable[[Callable[[ConsoleActions, dict[str, Any]], dict[str, Any]]], Handler],
) -> list[Route]:
    """The console's modal API, behind the console's own guards (Host, JSON)."""

    async def state(request: Request) -> Response:
        try:
            data = await run_in_threadpool(
                ConsoleModals(actions).state, str(request.query_params.get("user") or "")
            )
        except ConsoleError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(data)

    return [
        Route("/console/api/modals", guarded(state), methods=["GET"]),
        Route(
            "/console/api/modal/options",
            guarded(api(lambda console, body: ConsoleModals(console).options(body))),
            methods=["POST"],
        ),
        Route(
            "/console/api/modal/submit",
            guarded(api(lambda console, body: ConsoleModals(console).submit(body))),
            methods=["POST"],
        ),
        Route(
            "/console/api/modal/close",
            guarded(api(lambda console, body: ConsoleModals(console).close(body))),
            methods=["POST"],
        ),
    ]
