"""The AWS.AppConfig.FeatureFlags document: reading flags, changing one, checking values.

The document has `flags` (definitions: name, description, `attributes` with
their `constraints`) and `values` (per flag: `enabled` and attribute values).
A new value is checked against the attribute's constraints as AppConfig
defines them (type `string`, `number`, `boolean`, `string[]`, `number[]`;
`minimum`/`maximum` for numbers, `enum` for strings, `elements` for arrays;
`maxLength`, which some documents carry, is honoured too), so a wrong value is
refused before anything is written. AppConfig itself validates the same on
CreateHostedConfigurationVersion; we say it sooner and in words.

A string's `pattern` is left to AppConfig: it is a regular expression from the
document, and Python's `re` backtracks (`^([a-z]+)*$` against forty letters and
a `!` would hold the whole process, GIL and all, for hours).
A refusal shows the typed value and the document's own words inert.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from typing import Any

from bot import json_depth
from bot.flags.errors import FlagNotFound, FlagRefused
from bot.slack_text import code, escape

# AttributeValue limits in the AppConfig API reference.
STRING_MAX = 1024
ARRAY_MAX = 25
TYPES = ("string", "number", "boolean", "string[]", "number[]")


@dataclass(frozen=True)
class FlagState:
    """One flag as the document says it is now."""

    key: str
    enabled: bool
    name: str | None = None
    description: str | None = None
    values: dict[str, Any] = field(default_factory=dict)  # attribute values, without enabled
    constraints: dict[str, dict[str, Any]] = field(default_factory=dict)  # per attribute


def names_text(names: list[str]) -> str:
    return ", ".join(code(n) for n in sorted(names)) or "none"


class FlagDocument:
    """A parsed feature-flag document; changes return a new document, this one stays."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @classmethod
    def parse(cls, content: bytes) -> FlagDocument:
        try:
            raw = json.loads(content or b"{}")
        except ValueError as exc:
            raise FlagRefused(f"The hosted configuration is not JSON ({escape(exc)}).") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("flags", {}), dict):
            raise FlagRefused("The hosted configuration is not an AWS.AppConfig.FeatureFlags one.")
        return cls(raw)

    def to_bytes(self) -> bytes:
        return json.dumps(self.raw, indent=2, sort_keys=False).encode()

    @property
    def keys(self) -> list[str]:
        return list((self.raw.get("flags") or {}).keys())

    def flags(self) -> list[FlagState]:
        return [self.get_or_raise(key) for key in self.keys]

    def get_or_raise(self, key: str) -> FlagState:
        definition = (self.raw.get("flags") or {}).get(key)
        if not isinstance(definition, dict):
            raise FlagNotFound(f"There is no flag {code(key)}. Flags: {names_text(self.keys)}.")
        values = dict((self.raw.get("values") or {}).get(key) or {})
        enabled = bool(values.pop("enabled", False))
        constraints = {
            name: dict((attribute or {}).get("constraints") or {})
            for name, attribute in (definition.get("attributes") or {}).items()
        }
        return FlagState(
            key=key,
            enabled=enabled,
            name=definition.get("name"),
            description=definition.get("description"),
            values=values,
            constraints=constraints,
        )

    def _changed(self, key: str, updates: dict[str, Any]) -> FlagDocument:
        raw = copy.deepcopy(self.raw)
        values = raw.setdefault("values", {})
        entry = values.setdefault(key, {})
        entry.setdefault("enabled", False)
        entry.update(updates)
        return FlagDocument(raw)

    def with_enabled(self, key: str, enabled: bool) -> FlagDocument:
        self.get_or_raise(key)
        return self._changed(key, {"enabled": enabled})

    def with_attributes(self, key: str, given: dict[str, str]) -> FlagDocument:
        """The document with the flag's attributes set from text, each value checked first."""
        flag = self.get_or_raise(key)
        typed = {name: attribute_value(flag, name, text) for name, text in given.items()}
        return self._changed(key, typed)


def state_of(flag: FlagState) -> dict[str, Any]:
    """A flag's state as changes and the audit record it: `enabled` and its attribute values."""
    return {"enabled": flag.enabled, **flag.values}


def differences(old: FlagDocument, new: FlagDocument) -> list[dict[str, Any]]:
    """Every flag whose state or definition differs from `old` to `new`, in `new`'s order.

    Each is {"flag", "from", "to"} (a state, None where the flag is absent), with
    "definition": True when its definition (name, attributes, constraints) changed.
    """
    old_flags = old.raw.get("flags") or {}
    new_flags = new.raw.get("flags") or {}
    found: list[dict[str, Any]] = []
    for key in [*new.keys, *(k for k in old.keys if k not in new_flags)]:
        was, now = _state_or_none(old, key), _state_or_none(new, key)
        redefined = key in old_flags and key in new_flags and old_flags[key] != new_flags[key]
        if was != now or redefined:
            found.append(
                {"flag": key, "from": was, "to": now, **({"definition": True} if redefined else {})}
            )
    return found


def _state_or_none(document: FlagDocument, key: str) -> dict[str, Any] | None:
    try:
        return state_of(document.get_or_raise(key))
    except FlagNotFound:
        return None


def attribute_value(flag: FlagState, name: str, text: str) -> Any:
    """The typed value of `text` for attribute `name`, or FlagRefused saying what is expected."""
    if name == "enabled":
        raise FlagRefused("`enabled` is the flag itself: use `/flag on` or `/flag off`.")
    if name not in flag.constraints and name not in flag.values:
        raise FlagRefused(
            f"Flag {code(flag.key)} has no attribute {code(name)}. "
            f"Attributes: {names_text(list({*flag.constraints, *flag.values}))}."
        )
    constraints = flag.constraints.get(name) or {}
    kind = constraints.get("type") or _kind_of(flag.values.get(name))
    where = code(f"{flag.key}.{name}")
    if kind == "boolean":
        return _boolean(where, text)
    if kind == "number":
        return _number(where, text, constraints)
    if kind == "string":
        return _string(where, text, constraints)
    if kind in ("string[]", "number[]"):
        items = _items(where, text)
        if len(items) > ARRAY_MAX:
            raise FlagRefused(f"{where} holds at most {ARRAY_MAX} items; {len(items)} were given.")
        elements = dict(constraints.get("elements") or {})
        if kind == "number[]":
            return [_number(where, str(item), elements) for item in items]
        return [_string(where, str(item), elements) for item in items]
    raise FlagRefused(
        f"{where} has a type this bot does not know ({code(kind)}): change it in AWS."
    )


def _kind_of(value: Any) -> str:
    """An unconstrained attribute keeps the type of the value it has."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "number[]" if value and all(_is_number(v) for v in value) else "string[]"
    return "string"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _boolean(where: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise FlagRefused(f"{where} is a boolean (`true` or `false`); {code(text)} is not.")


def _number(where: str, text: str, constraints: dict[str, Any]) -> int | float:
    try:
        number = float(text.strip())
    except ValueError:
        raise FlagRefused(
            f"{where} is a number{_range(constraints)}; {code(text)} is not."
        ) from None
    if not math.isfinite(number):
        raise FlagRefused(f"{where} is a finite number; {code(text)} is not.")
    value: int | float = int(number) if number.is_integer() else number
    low, high = constraints.get("minimum"), constraints.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        raise FlagRefused(
            f"{where} is a number{_range(constraints)}; {code(text)} is out of range."
        )
    return value


def _range(constraints: dict[str, Any]) -> str:
    minimum, maximum = constraints.get("minimum"), constraints.get("maximum")
    low = None if minimum is None else escape(minimum)
    high = None if maximum is None else escape(maximum)
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" of at least {low}"
    if high is not None:
        return f" of at most {high}"
    return ""


def _string(where: str, text: str, constraints: dict[str, Any]) -> str:
    limit = min(int(constraints.get("maxLength") or STRING_MAX), STRING_MAX)
    if len(text) > limit:
        raise FlagRefused(f"{where} is at most {limit} characters; {len(text)} were given.")
    enum = constraints.get("enum")
    if enum and text not in enum:
        raise FlagRefused(
            f"{where} is one of {names_text([str(e) for e in enum])}; not {code(text)}."
        )
    # `pattern`: AppConfig's check decides (see the module's docstring).
    return text


def _items(where: str, text: str) -> list[Any]:
    """An array from JSON (`["a","b"]`, `[1,2]`) or from a comma-separated list."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            # Items are scalars; a list within a list is refused by its type, and one
            # nested deeper is refused here (json would recurse out of its stack on it).
            parsed = json_depth.loads(stripped, limit=2)
        except ValueError:
            raise FlagRefused(
                f"{where} is a list: `[1, 2]` or `a,b`; {code(text)} is not."
            ) from None
        if not isinstance(parsed, list):
            raise FlagRefused(f"{where} is a list: `[1, 2]` or `a,b`; {code(text)} is not.")
        return parsed
    return [part.strip() for part in stripped.split(",")] if stripped else []


def value_text(value: Any) -> str:
    """An attribute value as people read it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value)
