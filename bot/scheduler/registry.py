"""Job functions by name. APScheduler stores a job as `dispatch(name, kwargs)`, so a
job's code can move without breaking jobs already stored."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

JobFunction = Callable[..., None]
JOBS: dict[str, JobFunction] = {}

# The runtime of the scheduler running the job (set by its executor).
CURRENT: contextvars.ContextVar[Runtime] = contextvars.ContextVar("opsbot_job_runtime")


def job(name: str) -> Callable[[JobFunction], JobFunction]:
    """Register `fn(runtime, **kwargs)` as the job called `name`."""

    def register(fn: JobFunction) -> JobFunction:
        if name in JOBS and JOBS[name] is not fn:
            raise ValueError(f"job {name!r} is registered twice")
        JOBS[name] = fn
        return fn

    return register


def dispatch(name: str, kwargs: dict[str, Any]) -> None:
    """What APScheduler calls: find the job by name and run it with the current runtime."""
    fn = JOBS.get(name)
    if fn is None:
        log.error("no job called %r is registered; dropping it", name)
        return
    fn(CURRENT.get(), **kwargs)
