"""The Slack emulator's modals: triggers, views.open, views.update, views.push.

Slack hands an app a `trigger_id` with each command or click, valid for three
seconds and for one view; `views.open` with it shows a modal to that person.
Here the tests and the console mint triggers (`trigger_id`), may expire them
(`expire_trigger`), and read what was opened (`open_views`). What a person
submits reaches the app as a signed `view_submission` built by
sandbox/slack_view_requests.py; `answer_submission` then does with the app's
answer what Slack does (close the modal, show field errors, update, push).
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

# Slack's limits (views.open reference, Block Kit views).
TRIGGER_TTL_S = 3.0
TITLE_MAX = 24
BLOCKS_MAX = 100
METADATA_MAX = 3000
CALLBACK_ID_MAX = 255
STACK_MAX = 3


@dataclass
class Trigger:
    id: str
    user: str
    channel: str | None
    issued_at: float
    used: bool = False
    expired: bool = False


@dataclass
class OpenView:
    """A modal view as the person sees it; `stack` holds the views pushed over the root."""

    id: str
    hash: str
    user: str
    channel: str | None
    view: dict[str, Any]
    root_id: str
    errors: dict[str, str] = field(default_factory=dict)  # shown under fields after a submit
    closed: bool = False
    updates: int = 0

    def as_api(self, team_id: str, app_id: str) -> dict[str, Any]:
        view = self.view
        return {
            "id": self.id,
            "team_id": team_id,
            "app_id": app_id,
            "bot_id": "B0OPSBOT",
            "type": view.get("type", "modal"),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "private_metadata": view.get("private_metadata", ""),
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": view.get("blocks", []),
            "state": {"values": {}},
            "hash": self.hash,
            "root_view_id": self.root_id,
            "previous_view_id": None,
        }


def _view_problem(view: Any) -> str | None:
    """Why Slack would refuse `view` (its `invalid_arguments` cases we check), or None."""
    if not isinstance(view, dict) or view.get("type") != "modal":
        return "a modal view is an object of type modal"
    title = view.get("title")
    if not isinstance(title, dict) or not 0 < len(str(title.get("text") or "")) <= TITLE_MAX:
        return f"title must be plain_text of 1 to {TITLE_MAX} characters"
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or len(blocks) > BLOCKS_MAX:
        return f"blocks must be a list of at most {BLOCKS_MAX}"
    if any(b.get("type") == "input" for b in blocks if isinstance(b, dict)) and not view.get(
        "submit"
    ):
        return "a view with inputs needs a submit button"
    if len(str(view.get("private_metadata") or "")) > METADATA_MAX:
        return f"private_metadata must be at most {METADATA_MAX} characters"
    if len(str(view.get("callback_id") or "")) > CALLBACK_ID_MAX:
        return f"callback_id must be at most {CALLBACK_ID_MAX} characters"
    return None


def _refusal(view: Any) -> dict[str, Any] | None:
    """Slack's answer to a view it refuses, or None."""
    problem = _view_problem(view)
    if problem is None:
        return None
    return {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": [problem]}}


class SlackViewsMixin:
    """views.* of the Slack emulator (mixed into SlackEmulator, which provides `lock`)."""

    lock: threading.RLock
    _view_seq = itertools.count(1)
    # Slack's: a trigger is good for 3 seconds. Tests that want one expired say so
    # (`expire_trigger`) and give the rest longer, so that a loaded machine is no expiry.
    trigger_ttl_s: float = TRIGGER_TTL_S

    def _views_state(self) -> tuple[dict[str, Trigger], dict[str, OpenView]]:
        # Made on first use: the emulator's constructor stays its own.
        with self.lock:
            if not hasattr(self, "_triggers"):
                self._triggers: dict[str, Trigger] = {}
                self._views: dict[str, OpenView] = {}
            return self._triggers, self._views

    # -- what tests and the console use ----------------------------------------------------

    def trigger_id(self, *, user: str, channel: str | None = None) -> str:
        """A fresh trigger_id for a command or click by `user` (valid three seconds, once)."""
        triggers, _ = self._views_state()
        with self.lock:
            number = next(self._view_seq)
            trigger = Trigger(
                id=f"{number}.{int(time.time())}.{number:08x}",
                user=user,
                channel=channel,
                issued_at=time.monotonic(),
            )
            triggers[trigger.id] = trigger
            return trigger.id

    def expire_trigger(self, trigger_id: str) -> None:
        """Make `trigger_id` expired, as it is three seconds after Slack handed it out."""
        triggers, _ = self._views_state()
        with self.lock:
            triggers[trigger_id].expired = True

    def open_views(self, user: str | None = None) -> list[OpenView]:
        """The views showing now (topmost last), of `user` if given."""
        _, views = self._views_state()
        with self.lock:
            return [v for v in views.values() if not v.closed and user in (None, v.user)]

    def get_view(self, view_id: str) -> OpenView | None:
        _, views = self._views_state()
        with self.lock:
            return views.get(view_id)

    def answer_submission(self, view_id: str, answer: dict[str, Any] | None) -> None:
        """Do what Slack does with an app's answer to a view_submission of `view_id`."""
        _, views = self._views_state()
        with self.lock:
            shown = views[view_id]
            action = (answer or {}).get("response_action")
            if action == "errors":
                shown.errors = dict((answer or {}).get("errors") or {})
                return
            shown.errors = {}
            if action == "update":
                self._replace(shown, (answer or {})["view"])
                return
            if action == "push":
                self._show(
                    (answer or {})["view"], user=shown.user, channel=shown.channel, root=shown
                )
                return
            stack = [v for v in views.values() if v.root_id == shown.root_id]
            for view in stack if action == "clear" else [shown]:
                view.closed = True

    def close_view(self, view_id: str) -> None:
        """The person closed the modal (Cancel)."""
        _, views = self._views_state()
        with self.lock:
            views[view_id].closed = True

    # -- the API ---------------------------------------------------------------------------

    def _show(
        self, view: dict[str, Any], *, user: str, channel: str | None, root: OpenView | None
    ) -> OpenView:
        _, views = self._views_state()
        number = next(self._view_seq)
        view_id = f"V{number:010d}"
        shown = OpenView(
            id=view_id,
            hash=f"{int(time.time())}.{number:08x}",
            user=user,
            channel=channel,
            view=view,
            root_id=root.root_id if root else view_id,
        )
        views[view_id] = shown
        return shown

    def _replace(self, shown: OpenView, view: dict[str, Any]) -> None:
        number = next(self._view_seq)
        shown.view = view
        shown.hash = f"{int(time.time())}.{number:08x}"
        shown.updates += 1

    def _use_trigger(self, trigger_id: Any) -> Trigger | str:
        triggers, _ = self._views_state()
        trigger = triggers.get(str(trigger_id or ""))
        if trigger is None:
            return "invalid_trigger_id"
        if trigger.expired or time.monotonic() - trigger.issued_at > self.trigger_ttl_s:
            trigger.expired = True
            return "expired_trigger_id"
        if trigger.used:
            return "trigger_exchanged"
        trigger.used = True
        return trigger

    def _view_answer(self, shown: OpenView) -> dict[str, Any]:
        return {"ok": True, "view": shown.as_api("T0000", "A0OPSBOT")}

    def api_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        view = args.get("view")
        refused = _refusal(view)
        if refused is not None:
            return refused
        trigger = self._use_trigger(args.get("trigger_id"))
        if isinstance(trigger, str):
            return {"ok": False, "error": trigger}
        assert isinstance(view, dict)
        shown = self._show(view, user=trigger.user, channel=trigger.channel, root=None)
        return self._view_answer(shown)

    def api_views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        view = args.get("view")
        refused = _refusal(view)
        if refused is not None:
            return refused
        trigger = self._use_trigger(args.get("trigger_id"))
        if isinstance(trigger, str):
            return {"ok": False, "error": trigger}
        below = self.open_views(trigger.user)
        if not below:
            return {"ok": False, "error": "not_found"}
        root = below[-1]
        if len([v for v in below if v.root_id == root.root_id]) >= STACK_MAX:
            return {"ok": False, "error": "push_limit_reached"}
        assert isinstance(view, dict)
        return self._view_answer(
            self._show(view, user=trigger.user, channel=trigger.channel, root=root)
        )

    def api_views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        _, views = self._views_state()
        view = args.get("view")
        refused = _refusal(view)
        if refused is not None:
            return refused
        assert isinstance(view, dict)
        shown: OpenView | None = None
        if args.get("view_id"):
            shown = views.get(str(args["view_id"]))
        elif args.get("external_id"):
            shown = next(
                (v for v in views.values() if v.view.get("external_id") == args["external_id"]),
                None,
            )
        if shown is None or shown.closed:
            return {"ok": False, "error": "not_found"}
        if args.get("hash") and args["hash"] != shown.hash:
            return {"ok": False, "error": "hash_conflict"}
        self._replace(shown, view)
        return self._view_answer(shown)
