"""An APScheduler thread-pool executor that runs stored jobs through its scheduler's `run`.

A job due while another run of its id is still going waits for that run to end,
then runs: APScheduler would skip it and, a date job having no next run, delete
it from the store. At most one run waits per id (a newer one replaces it, as
with `coalesce`); one submitted in the instant its id became free goes first,
and the waiting one after it (every job claims against the state it acts on). A
run still waiting when the pool stops is handed to `put_back`, which stores it
again for the next leader.

Jobs that page or tell people (escalations, reminders, silence and window ends:
names starting `incidents.` or `maintenance.`) run in a pool of their own: watches
of AWS rollouts can each wait minutes on a slow API, and must not hold a page
back. A job handed to a pool but not started yet has left the store, so the
executor says how long the earliest such job has been due (`queued_overdue_s`)
for the lateness figure the alarm watches.
"""

from __future__ import annotations

import concurrent.futures
import functools
import itertools
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.executors.base import run_job
from apscheduler.executors.pool import BasePoolExecutor

log = logging.getLogger(__name__)

# (job id, job name, its arguments, attempt=): runs the job and deals with its failure.
Run = Callable[..., None]
# (the job, when it was due): stores a job that could not run here.
PutBack = Callable[[Any, datetime], None]

PAGING_PREFIXES = ("incidents.", "maintenance.")
# Of those, work that waits on Slack and pages nobody: archiving a resolved incident's
# channels (a storm resolves many at once; a Slack outage holds each for its timeout).
NOT_PAGING = frozenset({"incidents.archive_channel"})


def pages(job_name: str) -> bool:
    """Whether a job runs in the pool kept for what pages or tells people."""
    return job_name.startswith(PAGING_PREFIXES) and job_name not in NOT_PAGING


class _Named:
    """A stored job as `run_job` sees it: its id, name and arguments, bound to `run`;
    `started` is called as its run begins."""

    def __init__(self, job: Any, run: Run, started: Callable[[], None]) -> None:
        self._job = job
        self.id = job.id
        self.misfire_grace_time = job.misfire_grace_time
        self.func = functools.partial(_started_then, started, functools.partial(run, job.id))
        self.args = job.args
        self.kwargs = job.kwargs

    def __str__(self) -> str:
        return str(self._job)


def _started_then(
    started: Callable[[], None], run: Callable[..., None], *args: Any, **kwargs: Any
) -> None:
    started()
    run(*args, **kwargs)


class JobExecutor(BasePoolExecutor):  # type: ignore[misc]
    def __init__(self, run: Run, put_back: PutBack, max_workers: int = 4) -> None:
        super().__init__(
            concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="job")
        )
        self._paging_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers, thread_name_prefix="job-paging"
        )
        self.run = run
        self.put_back = put_back
        self._waiting: dict[str, tuple[Any, list[datetime]]] = {}
        # Runs handed to a pool and not started yet: when each was due, by a key of its own.
        self._queued: dict[int, datetime] = {}
        self._queued_lock = threading.Lock()
        self._keys = itertools.count()

    def drain(self) -> None:
        """Take no more jobs and wait for those submitted to end (`shutdown` then waits for none).

        Unlike APScheduler's `shutdown(wait=True)`, this holds none of the
        scheduler's locks: a running job may still schedule and cancel.
        """
        self._paging_pool.shutdown(wait=True)
        self._pool.shutdown(wait=True)

    def shutdown(self, wait: bool = True) -> None:
        self._paging_pool.shutdown(wait)
        self._pool.shutdown(wait)

    def queued_overdue_s(self, now: datetime) -> float:
        """Seconds the earliest run handed to a pool but not started has been due (0: none)."""
        with self._queued_lock:
            earliest = min(self._queued.values(), default=None)
        return 0.0 if earliest is None else max(0.0, (now - earliest).total_seconds())

    def submit_job(self, job: Any, run_times: list[datetime]) -> None:
        with self._lock:
            if self._instances[job.id] >= job.max_instances:
                if job.id in self._waiting:
                    log.info("job %s: a newer run replaces the one waiting", job.id)
                else:
                    log.info(
                        "job %s is due while its last run goes on: it runs after",
                        job.id,
                        extra={"job": job.name, "job_id": job.id},
                    )
                self._waiting[job.id] = (job, run_times)
                return
            self._do_submit_job(job, run_times)
            self._instances[job.id] += 1

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        def callback(future: concurrent.futures.Future[Any]) -> None:
            exc = future.exception()
            if exc:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, future.result())
            self._start_waiting(job.id)

        pool = self._paging_pool if pages(str(job.name)) else self._pool
        with self._queued_lock:
            key = next(self._keys)
            self._queued[key] = run_times[-1]

        def started() -> None:
            with self._queued_lock:
                self._queued.pop(key, None)

        try:
            future = pool.submit(
                run_job,
                _Named(job, self.run, started),
                job._jobstore_alias,
                run_times,
                self._logger.name,
            )
        except RuntimeError:  # the pool is stopping
            started()
            raise
        future.add_done_callback(callback)
        # A run the pool cancels at stop never starts: not counted as queued any more.
        future.add_done_callback(lambda _: started())

    def _start_waiting(self, job_id: str) -> None:
        """The run of `job_id` that waited for the one just ended: now, or back to the store."""
        with self._lock:
            waiting = self._waiting.get(job_id)
            # A run of the id submitted since the last one ended goes first.
            if waiting is None or self._instances.get(job_id, 0) >= waiting[0].max_instances:
                return
            job, run_times = self._waiting.pop(job_id)
            try:
                self._do_submit_job(job, run_times)
            except RuntimeError:  # the pool is stopping: the next leader runs it
                pass
            else:
                self._instances[job_id] += 1
                return
        self.put_back(job, run_times[-1])
