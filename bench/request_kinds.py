"""The kinds of Slack request the acknowledgement benchmark sends.

`KINDS` is the table the benchmark reads: each row is one kind of request,
sent in equal shares. A kind whose command or action opsbot does not handle
yet (Bolt answers 404) is reported as skipped, not measured; once opsbot
registers it, it is measured with no change here. A new kind is one row.
The bodies and their signatures come from `sandbox.slack_requests`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import quote_plus

from sandbox import slack_requests

CHANNEL_ID = "C0BENCHALERTS"
USER_ID = "U0ALICE"
MESSAGE_TS = "1.000001"


# Stand-ins that urlencode and json.dumps leave as they are, unique in any body.
_RESPONSE_URL = "RESPONSEURL0SLOT"
_TRIGGER_ID = "TRIGGERID0SLOT"


@dataclass(frozen=True)
class RequestKind:
    name: str
    command: str | None = None  # a slash command ...
    text: str = ""
    action_id: str | None = None  # ... or a button's action_id
    value: str = ""

    def build(self, response_url: str, *, trigger_id: str) -> str:
        """The body as the sandbox's builders make it."""
        if self.command is not None:
            return slack_requests.slash_command(
                self.command,
                self.text,
                user_id=USER_ID,
                channel_id=CHANNEL_ID,
                channel_name="alerts",
                response_url=response_url,
                trigger_id=trigger_id,
            )
        assert self.action_id is not None
        return slack_requests.block_action(
            self.action_id,
            self.value,
            user_id=USER_ID,
            channel_id=CHANNEL_ID,
            channel_name="alerts",
            message_ts=MESSAGE_TS,
            response_url=response_url,
            block_id=f"incident:{self.value}",
            trigger_id=trigger_id,
        )

    @cached_property
    def _template(self) -> str:
        return self.build(_RESPONSE_URL, trigger_id=_TRIGGER_ID)

    def _encode(self, value: str) -> str:
        if self.command is not None:  # a form field
            return quote_plus(value)
        return quote_plus(json.dumps(value)[1:-1])  # a JSON string inside the `payload` field

    def body(self, response_url: str, *, trigger_id: str = "1337.42.bench") -> str:
        """One request; Slack gives each a trigger_id of its own, so bodies never repeat.

        It is `build`'s body, made once and then filled in, so the load generator
        spends its CPU on sending, not on building (an action's `action_ts` stays
        that of the first build).
        """
        return self._template.replace(_RESPONSE_URL, self._encode(response_url)).replace(
            _TRIGGER_ID, self._encode(trigger_id)
        )


KINDS: tuple[RequestKind, ...] = (
    RequestKind("slash /opsbot help", command="/opsbot", text="help"),
    RequestKind("button Acknowledge", action_id="incident_acknowledge", value="1"),
    RequestKind("button Resolve", action_id="incident_resolve", value="1"),
)


def kind_named(name: str) -> RequestKind:
    for kind in KINDS:
        if kind.name == name:
            return kind
    raise KeyError(name)
