"""The listeners of the Bolt app, found by the request's id inside opsbot.

Bolt tries its listeners in the order they were registered, and before each
match it builds every argument a listener could be given (about 6 µs): with a
listener per button and per command, a click paid for a dozen or more of those
builds before its own listener ran. Here all buttons (and other block actions)
are one Bolt listener and all slash commands another, registered before any
other: each looks its listener up by action id or command name, then calls it
with the arguments it names. Views, options and events are few and rare and
stay Bolt's own listeners.

The order Bolt gives is kept: among the listeners of one command, or the
actions an id and a pattern both match, the first registered wins.

A routed listener acks and queues its work (`runtime.after_ack`, or a thread
of its own); it never waits on the network or the database. That is what lets
the HTTP route run the dispatch of a button or a command on the event loop
(handlers/slack_events.py): a listener that waited there would stall every
request. Views, options and events may wait, and are dispatched in threads.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from slack_bolt import Ack, App, BoltResponse
from slack_bolt.request.payload_utils import is_block_actions, is_slash_command, to_action
from slack_sdk import WebClient

log = logging.getLogger(__name__)

Listener = TypeVar("Listener", bound=Callable[..., Any])

# What a routed listener may ask for, by name, as Bolt would give it.
ARGUMENTS = frozenset({"ack", "body", "action", "command", "client"})


def routed(body: dict[str, Any]) -> bool:
    """Whether Bolt hands this request to a routed listener: a block action or a slash command."""
    return is_block_actions(body) or is_slash_command(body)


# The kinds of request a route takes (`Routes(on_unhandled=...)`, `routed_name`).
ACTION = "action"
COMMAND = "command"


def routed_name(body: dict[str, Any]) -> tuple[str, str]:
    """The kind of a routed request and what names its listener: an action id or a command."""
    if is_slash_command(body):
        return COMMAND, str(body.get("command") or "")
    # Bolt's own reading of the action, which it made for the listener already.
    return ACTION, str((to_action(body) or {}).get("action_id") or "")


@dataclass(frozen=True)
class _Routed:
    listener: Callable[..., Any]
    wants: tuple[str, ...]
    matchers: tuple[Callable[[dict[str, Any]], bool], ...] = ()
    prepare: Callable[[dict[str, Any]], None] | None = None

    @classmethod
    def of(
        cls,
        listener: Callable[..., Any],
        matchers: Sequence[Callable[[dict[str, Any]], bool]] = (),
        prepare: Callable[[dict[str, Any]], None] | None = None,
    ) -> _Routed:
        wants = tuple(inspect.signature(listener).parameters)
        unknown = set(wants) - ARGUMENTS
        if unknown:
            raise TypeError(
                f"{getattr(listener, '__name__', listener)!r} asks for {sorted(unknown)}: "
                f"a routed listener may ask for {sorted(ARGUMENTS)}"
            )
        return cls(listener, wants, tuple(matchers), prepare)

    def takes(self, body: dict[str, Any]) -> bool:
        return all(matcher(body) for matcher in self.matchers)

    def call(self, given: dict[str, Any]) -> Any:
        if self.prepare is not None:
            self.prepare(given["body"])
        return self.listener(**{name: given[name] for name in self.wants})


class Routes:
    """What handlers register their listeners with: Bolt's decorators, routed by id."""

    def __init__(self, app: App, *, on_unhandled: Callable[[str], None] | None = None) -> None:
        """`on_unhandled(kind)` is told of each request no listener takes (to count it)."""
        self.app = app
        self._on_unhandled = on_unhandled
        # action id -> (registration number, listener); patterns in registration order.
        self._actions: dict[str, tuple[int, _Routed]] = {}
        self._action_patterns: list[tuple[int, re.Pattern[str], _Routed]] = []
        self._commands: dict[str, list[_Routed]] = {}
        app.action(re.compile(""))(self._route_action)
        app.command(re.compile(""))(self._route_command)

    def action(self, action_id: str | re.Pattern[str]) -> Callable[[Listener], Listener]:
        """Listen for block actions with this id (a pattern: any id it finds a match in)."""

        def register(listener: Listener) -> Listener:
            number = len(self._actions) + len(self._action_patterns)
            routed = _Routed.of(listener)
            if isinstance(action_id, str):
                self._actions.setdefault(action_id, (number, routed))
            else:
                self._action_patterns.append((number, action_id, routed))
            return listener

        return register

    def command(
        self,
        name: str,
        *,
        matchers: Sequence[Callable[[dict[str, Any]], bool]] = (),
        prepare: Callable[[dict[str, Any]], None] | None = None,
    ) -> Callable[[Listener], Listener]:
        """Listen for the slash command `name` when every matcher takes its body.

        `prepare` changes the body before the listener sees it (and only then).
        """

        def register(listener: Listener) -> Listener:
            self._commands.setdefault(name, []).append(_Routed.of(listener, matchers, prepare))
            return listener

        return register

    def view(self, callback_id: str) -> Callable[..., Any]:
        return self.app.view(callback_id)

    def options(self, action_id: str) -> Callable[..., Any]:
        return self.app.options(action_id)

    def event(self, event_type: str) -> Callable[..., Any]:
        return self.app.event(event_type)

    def _find_action(self, action_id: str | None) -> _Routed | None:
        if action_id is None:
            return None
        number, routed = self._actions.get(action_id, (None, None))
        for pattern_number, pattern, by_pattern in self._action_patterns:
            if number is not None and pattern_number > number:
                break
            if pattern.search(action_id):
                return by_pattern
        return routed

    def _route_action(
        self, ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> Any:
        # Bolt's `action` is a block action's first, or the whole payload of other kinds.
        action_id = action.get("action_id") if is_block_actions(body) else None
        routed = self._find_action(action_id if isinstance(action_id, str) else None)
        if routed is None:
            return self._unhandled(ACTION, action_id)
        return routed.call({"ack": ack, "body": body, "action": action, "client": client})

    def _route_command(
        self, ack: Ack, body: dict[str, Any], command: dict[str, Any], client: WebClient
    ) -> Any:
        name = str(body.get("command") or "")
        for routed in self._commands.get(name, ()):
            if routed.takes(body):
                given = {"ack": ack, "body": body, "command": command, "client": client}
                return routed.call(given)
        return self._unhandled(COMMAND, name)

    def _unhandled(self, kind: str, name: object) -> BoltResponse:
        """Bolt's own answer to a request no listener takes."""
        log.warning("no listener for the %s %r", kind, name)
        if self._on_unhandled is not None:
            self._on_unhandled(kind)
        return BoltResponse(status=404, body={"error": "unhandled request"})
