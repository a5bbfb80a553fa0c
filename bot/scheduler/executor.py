"""An APScheduler thread-pool executor that runs jobs with its scheduler's runtime."""

from __future__ import annotations

import concurrent.futures
import contextvars
from typing import TYPE_CHECKING, Any

from apscheduler.executors.base import run_job
from apscheduler.executors.pool import BasePoolExecutor

from bot.scheduler.registry import CURRENT

if TYPE_CHECKING:
    from bot.runtime import Runtime


class RuntimeExecutor(BasePoolExecutor):  # type: ignore[misc]
    def __init__(self, runtime: Runtime, max_workers: int = 4) -> None:
        super().__init__(
            concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="job")
        )
        self.runtime = runtime

    def _do_submit_job(self, job: Any, run_times: Any) -> None:
        def callback(future: concurrent.futures.Future[Any]) -> None:
            exc = future.exception()
            if exc:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, future.result())

        def run() -> Any:
            context = contextvars.copy_context()
            return context.run(self._run_in_context, job, run_times)

        self._pool.submit(run).add_done_callback(callback)

    def _run_in_context(self, job: Any, run_times: Any) -> Any:
        CURRENT.set(self.runtime)
        return run_job(job, job._jobstore_alias, run_times, self._logger.name)
