"""What someone asked to change (a Change): plain data, also a confirmation's payload."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ON = "on"
OFF = "off"
SET = "set"
VERBS = (ON, OFF, SET)


@dataclass(frozen=True)
class Change:
    app: str
    env: str
    actor: str  # Slack user id
    verb: str  # on | off | set
    flag: str
    attributes: dict[str, str] = field(default_factory=dict)  # set: name -> value as typed
    channel: str | None = None  # where it was asked
    # AppConfig: the hosted version the change was made from. A confirmation may
    # come minutes later; if another version was written by then, it is refused.
    seen_version: int | None = None
    # AppConfig: the deployed version the change is made from (the newest hosted one may
    # be newer and never deployed); if another is deployed by the confirmation, refused.
    deployed_version: int | None = None
    # SSM: the parameter version the change is made from (an undo: the one the change it
    # undoes wrote); if SSM holds another by the time it runs, refused.
    parameter_version: int | None = None
    # An undo: the `flag.change` audit line of the change it reverts (said in refusals).
    undoes: int | None = None

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Change:
        seen = payload.get("seen_version")
        deployed = payload.get("deployed_version")
        parameter = payload.get("parameter_version")
        undoes = payload.get("undoes")
        channel = payload.get("channel")
        return cls(
            app=str(payload["app"]),
            env=str(payload["env"]),
            actor=str(payload["actor"]),
            verb=str(payload["verb"]),
            flag=str(payload["flag"]),
            attributes={str(k): str(v) for k, v in (payload.get("attributes") or {}).items()},
            channel=None if channel is None else str(channel),
            seen_version=None if seen is None else int(seen),
            deployed_version=None if deployed is None else int(deployed),
            parameter_version=None if parameter is None else int(parameter),
            undoes=None if undoes is None else int(undoes),
        )

    @property
    def label(self) -> str:
        return f"{self.app}/{self.env}"

    @property
    def audit_target(self) -> str:
        return f"flag:{self.label}"

    @property
    def what(self) -> str:
        """``apple_pay on``, ``new_checkout_flow rollout_percent=50``."""
        if self.verb == SET:
            return f"{self.flag} " + " ".join(f"{k}={v}" for k, v in self.attributes.items())
        return f"{self.flag} {self.verb}"
