"""PagerDuty's answers that were not what we asked for; the message is what a person reads."""

from __future__ import annotations


class PagerDutyError(Exception):
    """Base: PagerDuty did not do what was asked."""


class PagerDutyRefused(PagerDutyError):
    """PagerDuty answered and said no (a 4xx other than 429): asking again will not help."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class PagerDutyUnavailable(PagerDutyError):
    """No usable answer (429, 5xx, network): worth asking again later.

    `retry_after_s`: on a 429, the seconds PagerDuty asked to wait (its
    `ratelimit-reset` header, else `Retry-After`, else a default: a 429 always
    pauses); None for any other failure.
    `may_have_landed`: the request reached PagerDuty, or may have (an answer
    timed out, a connection reset, a 5xx other than 503), so a call that is not
    safe to repeat must be looked for before it is made again. False when the
    request surely did nothing: a 429, a 503, a connection never made.
    """

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, may_have_landed: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.may_have_landed = may_have_landed
