"""Job functions by name. APScheduler stores a job as `dispatch(name, kwargs)`, so a
job's code can move without breaking jobs already stored; the composition root
gives the scheduler the table of names to functions, each bound to what it needs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

JobFunction = Callable[..., None]
Jobs = Mapping[str, JobFunction]


def jobs_table(*tables: Jobs) -> dict[str, JobFunction]:
    """One table from each domain's; a name two domains claim is refused."""
    merged: dict[str, JobFunction] = {}
    for table in tables:
        for name, fn in table.items():
            if name in merged:
                raise ValueError(f"job {name!r} is registered twice")
            merged[name] = fn
    return merged


def dispatch(name: str, kwargs: dict[str, Any], attempt: int = 0) -> None:
    """The function every stored job names; `JobExecutor` runs it with its own table instead.

    `attempt`: how many times the job failed before (a retry, see `JobScheduler`).
    """
    raise RuntimeError(f"job {name!r} runs through the JobExecutor of a started JobScheduler")


def run_named(jobs: Jobs, name: str, kwargs: dict[str, Any]) -> None:
    """Find the job by name in `jobs` and run it with its stored arguments."""
    fn = jobs.get(name)
    if fn is None:
        log.error("no job called %r is registered; dropping it", name)
        return
    fn(**kwargs)
