"""Invoking a Lambda function synchronously, and reading what it answered."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from bot.adapters.aws import AWS_ERRORS, describe_error, error_code, may_have_been_done

log = logging.getLogger(__name__)

# What an error payload's message may show a person: Lambda's errorMessage can be long
# (a database driver's whole complaint); the stack trace is never shown at all.
ERROR_MESSAGE_CHARS = 500
# The pauses before trying a throttled invocation again (three tries in all). A function
# with reserved concurrency 1 (the role manager) is throttled while another invocation
# of it runs, which usually takes seconds.
THROTTLE_WAITS_S: tuple[float, ...] = (1.0, 2.0)
THROTTLED = "TooManyRequestsException"


class InvokeFailed(Exception):
    """The invocation itself failed (the function was not run, or its answer was lost).

    `code` is the AWS error code when AWS gave one (``ResourceNotFoundException``, ...);
    `throttled`: Lambda refused it for concurrency or rate on its only try, so the
    function did not run. `throttled_last`: Lambda refused its last try as throttled
    (always so when `throttled`); a retrying client's earlier tries may have run it.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        throttled: bool = False,
        throttled_last: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.throttled = throttled
        self.throttled_last = throttled or throttled_last


def _throttled_last(exc: BaseException) -> bool:
    """Whether Lambda refused the call's last try as throttled (429)."""
    if not isinstance(exc, ClientError):
        return False
    status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    return status == 429 or error_code(exc) == THROTTLED


def _throttled(exc: BaseException) -> bool:
    """Whether Lambda refused the call as throttled (429), on a try that was its only one:
    an earlier try of a retrying client may have run the function."""
    return _throttled_last(exc) and not may_have_been_done(exc)


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


def invoke(
    client: Any,
    *,
    function: str,
    event: Any,
    throttle_waits_s: Sequence[float] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Invocation:
    """Invoke `function` (name or ARN) with `event` as JSON and wait for its answer.

    A throttled invocation did not run, so it is tried again after each of
    `throttle_waits_s` (default THROTTLE_WAITS_S); nothing else is tried again here,
    least of all a lost answer, behind which the function may have run.
    Raises InvokeFailed, with what AWS said, when the function could not be run
    (missing, not allowed, still throttled, unreachable endpoint...).
    """
    waits = THROTTLE_WAITS_S if throttle_waits_s is None else tuple(throttle_waits_s)
    for tries, wait_s in enumerate(waits, start=1):
        try:
            return _invoke_once(client, function=function, event=event)
        except InvokeFailed as exc:
            if not exc.throttled:
                raise
            log.info(
                "invocation of %r throttled (try %s), trying again in %ss",
                function,
                tries,
                wait_s,
                extra={"function": function, "tries": tries},
            )
        sleep(wait_s)
    return _invoke_once(client, function=function, event=event)


def _invoke_once(client: Any, *, function: str, event: Any) -> Invocation:
    try:
        response = client.invoke(
            FunctionName=function,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
        raw = response["Payload"].read()
    except AWS_ERRORS as exc:
        raise InvokeFailed(
            describe_error(exc),
            code=error_code(exc),
            throttled=_throttled(exc),
            throttled_last=_throttled_last(exc),
        ) from exc
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode("utf-8", "replace")
    kind = response.get("FunctionError")
    if kind:
        return Invocation(function=function, payload=payload, failure=_failure(str(kind), payload))
    return Invocation(function=function, payload=payload)
