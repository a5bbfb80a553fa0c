"""The role manager's JSON result, parsed once into what the bot renders and audits.

The format is the one infra/lambda/role_manager/role_manager.py returns. Parsing is
lenient about missing keys (an older function may not send them all) but never
trusts a type: whatever is not the expected shape is left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MANAGE = "manage"  # what /dbrole provision asks the function to do
CHECK = "check"


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(item) for item in value if isinstance(item, str | int | float)]


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class RoleState:
    name: str
    exists: bool
    attributes: list[str]
    grants: list[str]
    member_of: list[str]

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> RoleState:
        return cls(
            name=str(data.get("name") or "?"),
            exists=bool(data.get("exists", True)),
            attributes=_strings(data.get("attributes")),
            grants=_strings(data.get("grants")),
            member_of=_strings(data.get("member_of")),
        )


@dataclass(frozen=True)
class ManagerResult:
    """One run of the role manager, as it reported it."""

    action: str
    ok: bool
    changed: list[str] = field(default_factory=list)
    roles: list[RoleState] = field(default_factory=list)
    schema_name: str | None = None
    schema_exists: bool = False
    schema_owner: str | None = None
    tables_reachable: bool = False
    table_count: int = 0
    unreachable: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # The function refused a name it must not touch (its errors say which and why) and
    # changed nothing.
    refused: bool = False
    # False: the run ended before it checked or changed anything (a secret it could not
    # read, a database it could not reach, an invalid configuration): its errors say why.
    # A function that does not say is taken to have run.
    ran: bool = True

    @classmethod
    def from_payload(cls, payload: Any) -> ManagerResult | None:
        """The result, or None when the payload is not a role-manager result at all."""
        if not isinstance(payload, dict) or "ok" not in payload or "action" not in payload:
            return None
        schema = _mapping(payload.get("schema"))
        tables = _mapping(payload.get("tables"))
        roles = payload.get("roles")
        count = tables.get("count")
        return cls(
            action=str(payload.get("action")),
            ok=payload.get("ok") is True,
            changed=_strings(payload.get("changed")),
            roles=[
                RoleState.from_payload(r)
                for r in (roles if isinstance(roles, list) else [])
                if isinstance(r, dict)
            ],
            schema_name=str(schema["name"]) if schema.get("name") else None,
            schema_exists=bool(schema.get("exists")),
            schema_owner=str(schema["owner"]) if schema.get("owner") else None,
            tables_reachable=payload.get("tables_reachable") is True,
            table_count=count if isinstance(count, int) else 0,
            unreachable=_strings(tables.get("unreachable")),
            warnings=_strings(payload.get("warnings")),
            errors=_strings(payload.get("errors")),
            refused=payload.get("refused") is True,
            ran=payload.get("ran") is not False,
        )


@dataclass(frozen=True)
class Outcome:
    """What came of asking an environment's role manager: its result, or why there is none."""

    action: str  # MANAGE or CHECK
    label: str  # app/env
    function: str
    result: ManagerResult | None = None
    failure: str | None = None  # the function raised, could not be invoked, or answered nonsense
    # With a failure: the invocation's answer was lost, and the function may have run.
    unanswered: bool = False

    @property
    def ok(self) -> bool:
        return self.failure is None and self.result is not None and self.result.ok

    @property
    def did_not_run(self) -> bool:
        """The role manager answered, but ended before it checked or changed anything."""
        return self.failure is None and self.result is not None and not self.result.ran

    @property
    def refused(self) -> bool:
        """The role manager refused to run as configured, and changed nothing."""
        return self.failure is None and self.result is not None and self.result.refused

    def audit_detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"function": self.function, "ok": self.ok}
        if self.failure is not None:
            detail["failure"] = self.failure
        if self.unanswered:
            detail["unanswered"] = True
        if self.result is not None:
            detail["changed"] = self.result.changed[:50]
            detail["errors"] = self.result.errors[:50]
            detail["warnings"] = self.result.warnings[:20]
            detail["tables_reachable"] = self.result.tables_reachable
            if self.result.refused:
                detail["refused"] = True
            if not self.result.ran:
                detail["ran"] = False
        return detail
