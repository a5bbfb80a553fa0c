"""What each kind of pending action does: who may click, and what runs once it may go.

A domain registers its kind at import (like scheduled jobs), e.g. deploys
registers "deploy"; feature flags and database roles add their own. The
mechanism itself knows nothing of what a kind does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.approvals.errors import ActionNotFound

if TYPE_CHECKING:
    from bot.approvals.models import PendingAction
    from bot.apps.services import Services

CONFIRM = "confirm"
APPROVE = "approve"
CANCEL = "cancel"
DECISIONS = (CONFIRM, APPROVE, CANCEL)


@dataclass(frozen=True)
class Kind:
    name: str
    # The confirm button's text, e.g. "Deploy".
    confirm_label: str
    # Raise ClickRefused unless `user_id` may take `decision` (confirm, approve,
    # cancel) on the action; the mechanism itself enforces who-is-who rules
    # (only the requester confirms, nobody approves their own request).
    authorize: Callable[[Services, PendingAction, str, str], None]
    # Run the action once every click is in; return what came of it (one line
    # for people), raise ActionFailed with the reason when it did not succeed.
    execute: Callable[[Services, PendingAction], str]


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    if kind.name in KINDS and KINDS[kind.name] is not kind:
        raise ValueError(f"pending-action kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind


def get_or_raise(name: str) -> Kind:
    found = KINDS.get(name)
    if found is None:
        raise ActionNotFound(f"No handler is registered for `{name}` requests.")
    return found
