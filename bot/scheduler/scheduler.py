"""The job scheduler: APScheduler 3, its SQLAlchemy job store, leader-only execution."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from sqlalchemy import Engine

from bot.scheduler.executor import JobExecutor
from bot.scheduler.leader import Leadership
from bot.scheduler.registry import Jobs, dispatch, run_named

log = logging.getLogger(__name__)

TABLE = "apscheduler_jobs"
# Another instance may add a job due sooner than the leader's next wake-up.
RESCAN_S = 2.0


class _LeaderScheduler(BackgroundScheduler):  # type: ignore[misc]
    """BackgroundScheduler that processes jobs only while running.

    APScheduler's loop processes due jobs once more when it is woken to shut
    down, even when paused; a follower stopping would then take due jobs out of
    the shared store without running them.
    """

    def _process_jobs(self) -> float | None:
        if self.state != STATE_RUNNING:
            return None
        wait: float | None = super()._process_jobs()
        return wait


class JobScheduler:
    """Schedules named jobs; the leader runs them when due.

    With `background=False` nothing runs by itself: `run_due(now)` runs what a
    given clock says is due (tests on a test clock).
    """

    def __init__(
        self, engine: Engine, *, background: bool = True, leader_interval_s: float = 5.0
    ) -> None:
        self.engine = engine
        self.background = background
        self.leader_interval_s = leader_interval_s
        self._scheduler: BackgroundScheduler | None = None
        self._leadership: Leadership | None = None
        self._jobs: Jobs = {}
        self._stop = threading.Event()
        self._rescan: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        return self._leadership is not None and self._leadership.is_leader

    def start(self, jobs: Jobs) -> None:
        """Start; `jobs` are the functions stored jobs name, bound to what they need."""
        self._jobs = jobs
        self._stop.clear()
        scheduler = _LeaderScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.engine, tablename=TABLE)},
            executors={"default": JobExecutor(jobs)},
            # Run late rather than never (a restart may come after the due time);
            # one instance of a job at a time.
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=UTC,
        )
        scheduler.start(paused=True)
        self._scheduler = scheduler
        if not self.background:
            return
        self._leadership = Leadership(
            self.engine,
            on_elected=scheduler.resume,
            on_deposed=scheduler.pause,
            interval_s=self.leader_interval_s,
        )
        self._leadership.start()
        self._rescan = threading.Thread(target=self._rescan_loop, name="job-rescan", daemon=True)
        self._rescan.start()

    def stop(self) -> None:
        self._stop.set()
        if self._leadership is not None:
            self._leadership.stop()
        if self._rescan is not None:
            self._rescan.join(5)
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None

    def _rescan_loop(self) -> None:
        while not self._stop.wait(RESCAN_S):
            if self.is_leader and self._scheduler is not None:
                self._scheduler.wakeup()

    def _require(self) -> BackgroundScheduler:
        if self._scheduler is None:
            raise RuntimeError("the job scheduler is not started")
        return self._scheduler

    def schedule(self, name: str, *, at: datetime, job_id: str, **kwargs: Any) -> None:
        """Run job `name` with `kwargs` at `at`; a job with the same id is replaced."""
        self._require().add_job(
            dispatch, "date", run_date=at, id=job_id, args=[name, kwargs], replace_existing=True
        )

    def cancel(self, job_id: str) -> bool:
        try:
            self._require().remove_job(job_id)
        except JobLookupError:
            return False
        return True

    def pending(self) -> list[tuple[str, datetime | None]]:
        """(job id, next run time) of every stored job."""
        return [(job.id, job.next_run_time) for job in self._require().get_jobs()]

    def run_due(self, now: datetime) -> list[str]:
        """Run, in this thread, every job due at `now`; return their ids."""
        scheduler = self._require()
        ran = []
        for job in scheduler.get_jobs():
            if job.next_run_time is None or job.next_run_time > now:
                continue
            scheduler.remove_job(job.id)
            try:
                run_named(self._jobs, *job.args, **job.kwargs)
            except Exception:
                log.exception("job %s failed", job.id)
            ran.append(job.id)
        return ran
