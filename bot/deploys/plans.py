"""What was asked (a Request) and what will be done (a Plan): plain data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bot.apps.registry import Target
from bot.deploys.models import DEPLOY


@dataclass(frozen=True)
class Request:
    """What someone asked for; also the payload a confirmation carries."""

    app: str
    env: str
    actor: str  # Slack user id (from the CLI: the one `rights.cli` maps its identity to)
    kind: str = DEPLOY
    tag: str | None = None
    digest: str | None = None  # pinned: the image the approvers saw
    rollback_of: int | None = None
    force_reason: str | None = None
    # A request that waited for clicks: the checks its message showed as forced. At
    # run time its force reason overrides only these, never a check that began to
    # block after the approver looked. None: it did not wait (it forces what blocks now).
    forces_shown: tuple[str, ...] | None = None
    # An incident's undo: the deploy it rolls back and the revision that deploy put in
    # place. Refused while ECS runs another one, so the undo never takes newer changes
    # (ours or made outside opsbot) down with it.
    undoes: int | None = None
    undoes_task_definition: str | None = None
    # A request that waited for clicks: the revision ECS ran when its message was shown
    # ("Task definition `api-prod:3` → ..."). Refused while ECS runs another one, so an
    # approval never covers a change away from a revision nobody saw. None: it did not
    # wait, or was stored before requests carried it (it runs from what runs then).
    shown_task_definition: str | None = None
    # Where it was asked: announcements go there when there is no release channel.
    channel: str | None = None
    # Asked through the CLI: its identity (`github:octocat`), for the audit.
    cli_identity: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Request:
        def text(key: str) -> str | None:
            value = payload.get(key)
            return None if value is None else str(value)

        def number(key: str) -> int | None:
            value = payload.get(key)
            return None if value is None else int(value)

        shown = payload.get("forces_shown")
        return cls(
            app=str(payload["app"]),
            env=str(payload["env"]),
            actor=str(payload["actor"]),
            kind=str(payload.get("kind") or DEPLOY),
            tag=text("tag"),
            digest=text("digest"),
            rollback_of=number("rollback_of"),
            force_reason=text("force_reason"),
            forces_shown=tuple(str(n) for n in shown) if isinstance(shown, list | tuple) else None,
            undoes=number("undoes"),
            undoes_task_definition=text("undoes_task_definition"),
            shown_task_definition=text("shown_task_definition"),
            channel=text("channel"),
            cli_identity=text("cli_identity"),
        )

    @property
    def label(self) -> str:
        return f"{self.app}/{self.env}"

    @property
    def audit_target(self) -> str:
        return f"deploy:{self.label}"


@dataclass(frozen=True)
class Plan:
    """A request that passed its checks: exactly what `start` will do."""

    request: Request
    target: Target
    image: str  # pinned by digest
    digest: str
    tag: str | None
    task_definition: str | None  # a rollback's revision to restore; None: register a new one
    current_task_definition: str
    current_image: str | None
    current_tag: str | None  # a tag of the running image, for people
    scan: dict[str, Any]
    forced: tuple[str, ...] = ()
    # The active deployment this start takes over: stuck (forced), or rolled back by it.
    takeover: int | None = None
    channel: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def announce_channel(target: Target, request: Request) -> str | None:
    """Where a deploy is announced and confirmed: the release channel, else where it was asked."""
    return target.settings.release_channel or request.channel
