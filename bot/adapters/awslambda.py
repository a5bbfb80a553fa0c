"""Invoking a Lambda function synchronously, and reading what it answered."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.adapters.aws import AWS_ERRORS, describe_error, error_code

# What an error payload's message may show a person: Lambda's errorMessage can be long
# (a database driver's whole complaint); the stack trace is never shown at all.
ERROR_MESSAGE_CHARS = 500


class InvokeFailed(Exception):
    """The invocation itself failed (the function was not run, or its answer was lost).

    `code` is the AWS error code when AWS gave one (``ResourceNotFoundException``, ...).
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class FunctionFailure:
    """The function ran and raised (Lambda's ``X-Amz-Function-Error``)."""

    kind: str  # "Unhandled" (the code raised) or "Handled"
    error_type: str
    error_message: str

    @property
    def text(self) -> str:
        return f"{self.error_type}: {self.error_message}" if self.error_message else self.error_type


@dataclass(frozen=True)
class Invocation:
    """A finished synchronous invocation: the decoded payload, or how the function failed."""

    function: str
    payload: Any
    failure: FunctionFailure | None = None


def _failure(kind: str, payload: Any) -> FunctionFailure:
    if isinstance(payload, Mapping):
        error_type = str(payload.get("errorType") or "Error")
        message = str(payload.get("errorMessage") or "").strip()
    else:
        error_type, message = "Error", "" if payload is None else str(payload).strip()
    if len(message) > ERROR_MESSAGE_CHARS:
        message = message[: ERROR_MESSAGE_CHARS - 1] + "…"
    return FunctionFailure(kind=kind, error_type=error_type, error_message=message)


def invoke(client: Any, *, function: str, event: Any) -> Invocation:
    """Invoke `function` (name or ARN) with `event` as JSON and wait for its answer.

    Raises InvokeFailed, with what AWS said, when the function could not be run
    (missing, not allowed, throttled, unreachable endpoint...).
    """
    try:
        response = client.invoke(
            FunctionName=function,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
        raw = response["Payload"].read()
    except AWS_ERRORS as exc:
        raise InvokeFailed(describe_error(exc), code=error_code(exc)) from exc
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode("utf-8", "replace")
    kind = response.get("FunctionError")
    if kind:
        return Invocation(function=function, payload=payload, failure=_failure(str(kind), payload))
    return Invocation(function=function, payload=payload)
