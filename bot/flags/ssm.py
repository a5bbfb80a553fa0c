"""SSM Parameter Store flags: /service/<service_name>/feature-flag/<FLAG>, "true" or "false".

The convention of infra/modules/feature-flags: one String parameter per flag,
injected into the ECS task as FF_<FLAG> when it starts. Flags are created by
Terraform; the bot only flips existing ones.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.flags.document import names_text
from bot.flags.errors import FlagNotFound, aws_call
from bot.slack_text import code


@dataclass(frozen=True)
class SsmFlag:
    name: str  # the last part of the parameter name, e.g. NEW_CHECKOUT_FLOW
    value: str  # "true" or "false" (anything else is shown as it is)
    version: int
    modified_at: datetime | None
    modified_by: str | None  # SSM's LastModifiedUser (an IAM ARN)

    @property
    def enabled(self) -> bool:
        return self.value.strip().lower() == "true"


def prefix(service_name: str) -> str:
    return f"/service/{service_name}/feature-flag/"


def list_flags(client: Any, *, service_name: str, with_writers: bool = True) -> list[SsmFlag]:
    """Every flag of the service, with who changed it last (`with_writers`).

    The last writer comes from GetParameterHistory, which IAM scopes to the
    flag parameters (DescribeParameters would need Resource "*"): one call per
    flag, so what needs only names and values (suggestions) goes without. A
    version's writer never changes, so it is asked once per version (`_WRITERS`):
    anyone may list, and a list repeated in an incident would otherwise spend SSM's
    rate on history while a flag change waits for it.
    """
    path = prefix(service_name)
    values: dict[str, dict[str, Any]] = {}
    with aws_call(f"read the parameters under {code(path)}"):
        for page in client.get_paginator("get_parameters_by_path").paginate(
            Path=path, Recursive=False
        ):
            for parameter in page.get("Parameters") or []:
                values[str(parameter["Name"])] = parameter
        flags = []
        for name, parameter in sorted(values.items()):
            version = int(parameter.get("Version") or 0)
            last = _last_write(client, name, version) if with_writers else {}
            flags.append(
                SsmFlag(
                    name=name[len(path) :],
                    value=str(parameter.get("Value") or ""),
                    version=version,
                    modified_at=last.get("LastModifiedDate") or parameter.get("LastModifiedDate"),
                    modified_by=last.get("LastModifiedUser"),
                )
            )
    return flags


# Each SSM client's (a runtime's) last writers: parameter name -> (version, history entry).
_WRITERS: weakref.WeakKeyDictionary[Any, dict[str, tuple[int, dict[str, Any]]]] = (
    weakref.WeakKeyDictionary()
)
_WRITERS_LOCK = threading.Lock()


def _last_write(client: Any, name: str, version: int) -> dict[str, Any]:
    """The history entry of the parameter's `version` (the newest when it moved on since)."""
    with _WRITERS_LOCK:
        known = _WRITERS.setdefault(client, {}).get(name)
    if known is not None and known[0] == version:
        return known[1]
    newest: dict[str, Any] = {}
    for page in client.get_paginator("get_parameter_history").paginate(
        Name=name, PaginationConfig={"PageSize": 50}
    ):
        entries = page.get("Parameters") or []  # oldest first
        if entries:
            newest = entries[-1]
    if newest.get("Version") == version:
        with _WRITERS_LOCK:
            _WRITERS.setdefault(client, {})[name] = (version, newest)
    return newest


def find_or_raise(flags: list[SsmFlag], name: str, *, service_name: str) -> SsmFlag:
    """The flag by its name (any case: Slack users type lower case); unknown lists them."""
    for flag in flags:
        if flag.name == name:
            return flag
    same = [flag for flag in flags if flag.name.lower() == name.lower()]
    if len(same) == 1:
        return same[0]
    raise FlagNotFound(
        f"There is no flag {code(name)} under {code(prefix(service_name))}. "
        f"Flags: {names_text([f.name for f in flags])}."
    )


def read(client: Any, *, service_name: str, flag: str) -> SsmFlag:
    """One flag's value and version as SSM holds them now (its last writer is not read)."""
    name = prefix(service_name) + flag
    with aws_call(f"read {code(name)}"):
        parameter = client.get_parameter(Name=name)["Parameter"]
    return SsmFlag(
        name=flag,
        value=str(parameter.get("Value") or ""),
        version=int(parameter.get("Version") or 0),
        modified_at=parameter.get("LastModifiedDate"),
        modified_by=None,
    )


def write(client: Any, *, service_name: str, flag: str, enabled: bool) -> int:
    """Overwrite the flag's parameter; its new version."""
    name = prefix(service_name) + flag
    with aws_call(f"write {code(name)}"):
        answer = client.put_parameter(
            Name=name, Value="true" if enabled else "false", Type="String", Overwrite=True
        )
    return int(answer.get("Version") or 0)
