"""Job functions by name. APScheduler stores a job as `dispatch(name, kwargs)`, so a
job's code can move without breaking jobs already stored; the composition root
gives the scheduler the table of names to functions, each bound to what it needs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

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


class UnknownJob(LookupError):
    """A stored job names a function this version does not have."""


def run_named(jobs: Jobs, name: str, kwargs: dict[str, Any]) -> None:
    """Find the job by name in `jobs` and run it with its stored arguments.

    Raises UnknownJob for a name not in `jobs`. During a rolling deploy the old
    release may still lead while the new one stores jobs it does not know: the
    job is a failure like any other, so `JobScheduler` stores it again under its
    id with the usual backoff (its retries outlast a deploy by far) and counts
    it, and the next leader that knows the name runs it. Putting it back at its
    own due time instead would have this leader take it out again at once, in a
    loop, and keep forever a job no version knows; after its last retry it is
    given up, logged as an error and counted, as any failing job.
    """
    fn = jobs.get(name)
    if fn is None:
        raise UnknownJob(f"no job called {name!r} is registered in this version")
    fn(**kwargs)
