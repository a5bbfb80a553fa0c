"""An APScheduler thread-pool executor that runs stored jobs through its scheduler's `run`."""

from __future__ import annotations

import concurrent.futures
import functools
from collections.abc import Callable
from typing import Any

from apscheduler.executors.base import run_job
from apscheduler.executors.pool import BasePoolExecutor

# (job id, job name, its arguments, attempt=): runs the job and deals with its failure.
Run = Callable[..., None]


class _Named:
    """A stored job as `run_job` sees it: its id, name and arguments, bound to `run`."""

    def __init__(self, job: Any, run: Run) -> None:
        self._job = job
        self.id = job.id
        self.misfire_grace_time = job.misfire_grace_time
        self.func = functools.partial(run, job.id)
        self.args = job.args
        self.kwargs = job.kwargs

    def __str__(self) -> str:
        return str(self._job)


class JobExecutor(BasePoolExecutor):  # type: ignore[misc]
    def __init__(self, run: Run, max_workers: int = 4) -> None:
        super().__init__(
            concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="job")
        )
        self.run = run

    def drain(self) -> None:
        """Take no more jobs and wait for those submitted to end (`shutdown` then waits for none).

        Unlike APScheduler's `shutdown(wait=True)`, this holds none of the
        scheduler's locks: a running job may still schedule and cancel.
        """
        self._pool.shutdown(wait=True)

    def _do_submit_job(self, job: Any, run_times: Any) -> None:
        def callback(future: concurrent.futures.Future[Any]) -> None:
            exc = future.exception()
            if exc:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, future.result())

        self._pool.submit(
            run_job, _Named(job, self.run), job._jobstore_alias, run_times, self._logger.name
        ).add_done_callback(callback)
