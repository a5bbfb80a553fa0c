"""The job scheduler: APScheduler 3, its SQLAlchemy job store, leader-only execution.

The leader takes a date job out of the store when it hands it to the executor
(`_JobStore.take_due`: only the version still due, whatever other instances
cancel or schedule meanwhile), so a job that raises would be gone until the
next start. Instead it is tried again under its own id, later each time: every
job claims its work against the state it acts on (a due time, a token, an
outbox key), so a run that is repeated acts at most once. A job whose name
this version does not know fails the same way (a newer release's, during a
rolling deploy: see `registry.run_named`). After `retries` failures it is
given up, logged as an error and counted. Nothing here runs it again: every
domain re-schedules its jobs at each start from the state it keeps (due times,
tokens, what is still open), so a job given up or lost with a crash comes back
at the next start, not before: incidents.*, maintenance.window_end,
oncall.handoff (today's, if nothing was posted yet), flags.watch (of a change
made in the last 7 days), approvals.expire, deploys.lock_reminder,
deploys.watch, changes.look_at_ecs and changes.undo_lost (of an undo still
running from the last 7 days).

`stop_running()` starts no more jobs, then waits for the running ones without
holding the job store's lock, so what they schedule or retry is stored as usual
(the store is shared: the next leader runs it); the store stays open for what
else still schedules (the outbox's last sends). `stop()` then shuts APScheduler
down. Once it is down, `schedule` and `cancel` raise instead of keeping the job
in memory (APScheduler's "tentative" jobs of a stopped scheduler), where it is
lost; the caller counts a schedule lost so as given up (`count_given_up`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from threading import TIMEOUT_MAX
from typing import Any, TypeVar

from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING, STATE_STOPPED
from apscheduler.util import datetime_to_utc_timestamp
from prometheus_client import Counter
from sqlalchemy import Engine

from bot.scheduler.executor import JobExecutor
from bot.scheduler.leader import Leadership
from bot.scheduler.registry import Jobs, dispatch, run_named

log = logging.getLogger(__name__)

T = TypeVar("T")

TABLE = "apscheduler_jobs"
# Another instance may add a job due sooner than the leader's next wake-up.
RESCAN_S = 2.0
# A failed job runs again after 30 s, then 60 s, ... at most 15 min apart, ten times.
RETRY_FIRST_S = 30.0
RETRY_MAX_S = 900.0
RETRIES = 10
# What became of a failed run: the `outcome` of opsbot_scheduled_job_failures.
RETRIED = "retried"  # scheduled again under its id
SUPERSEDED = "superseded"  # its id was scheduled anew while it ran: that schedule stands
GAVE_UP = "gave_up"  # out of attempts, or the retry could not be stored: not run again here
FAILURE_OUTCOMES = (RETRIED, SUPERSEDED, GAVE_UP)
# A pass over the store that failed (the database unreachable) is tried again this much
# later at the latest (the leader's rescan wakes the loop every RESCAN_S).
PASS_RETRY_S = 5.0


class SchedulerStopped(RuntimeError):
    """The job scheduler is shut down: nothing can be scheduled or cancelled through it."""


class _JobStore(SQLAlchemyJobStore):  # type: ignore[misc]
    """The job table, from which the leader takes the due jobs out in one statement."""

    def take_due(self, now: datetime) -> list[Job]:
        """Delete the jobs due at `now` and return them as deleted, the earliest first.

        One DELETE ... RETURNING: a job that another instance cancelled, or
        scheduled again for later, before the statement reached its row is no
        longer due, so it is neither deleted nor returned (PostgreSQL checks a
        row changed meanwhile again in its new version), and each job returned is
        the version deleted. APScheduler reads the due jobs, then deletes each by
        id: that deletes a newer schedule of the id, and raises for one cancelled.
        """
        table = self.jobs_t
        take = (
            table.delete()
            .where(table.c.next_run_time <= datetime_to_utc_timestamp(now))
            .returning(table.c.id, table.c.next_run_time, table.c.job_state)
        )
        with self.engine.begin() as connection:
            rows = sorted(connection.execute(take), key=lambda row: row.next_run_time)
        jobs = []
        for row in rows:
            try:
                jobs.append(self._reconstitute_job(row.job_state))
            except Exception as exc:  # as APScheduler, which drops a job it cannot read
                log.error(
                    "stored job %s could not be read (%s); dropped",
                    row.id,
                    type(exc).__name__,
                    exc_info=exc,
                    extra={"job_id": row.id},
                )
        return jobs


class _LeaderScheduler(BackgroundScheduler):  # type: ignore[misc]
    """BackgroundScheduler that processes jobs only while running, and not once closed.

    APScheduler's loop processes due jobs once more when it is woken to shut
    down, even when paused; a follower stopping would then take due jobs out of
    the shared store without running them.

    A pass takes the due jobs out with `_JobStore.take_due`, then starts them.
    Anything a pass raises would end the loop's thread, and with it every job
    on this instance, which still holds the leader's lock so no other takes
    over: a failed pass is logged, counted in `pass_failures` and tried again
    PASS_RETRY_S later. A loop thread that ended anyway is started again at the
    next `wakeup` (every RESCAN_S on the leader, and `resume`).
    """

    _closed = False
    _thread: threading.Thread | None
    pass_failures: Counter | None = None

    def __init__(self, **options: Any) -> None:
        self._revive_lock = threading.Lock()
        super().__init__(**options)

    def _process_jobs(self) -> float | None:
        # Checked under the job store lock, which `close` takes: no job starts after it.
        with self._jobstores_lock:
            if self.state != STATE_RUNNING or self._closed:
                return None
            try:
                return self._start_due()
            except Exception as exc:
                log.error(
                    "a pass over the job store failed (%s); trying again within %s s",
                    type(exc).__name__,
                    PASS_RETRY_S,
                    exc_info=exc,
                    extra={"retry_s": PASS_RETRY_S},
                )
                self._count_pass_failure()
                return PASS_RETRY_S

    def _start_due(self) -> float | None:
        """Take the due jobs out and start them; seconds until the next one is due."""
        now = datetime.now(UTC)
        store: _JobStore = self._lookup_jobstore("default")
        taken = store.take_due(now)
        for index, job in enumerate(taken):
            try:
                self._start(store, job, now)
            except Exception:
                self._store_back(store, taken[index:])
                raise
        next_run: datetime | None = store.get_next_run_time()
        if next_run is None:
            return None
        return min(max(next_run.timestamp() - datetime.now(UTC).timestamp(), 0.0), TIMEOUT_MAX)

    def _start(self, store: _JobStore, job: Job, now: datetime) -> None:
        """Hand a job taken out of the store to its executor; store its next run, if any."""
        run_times = job._get_run_times(now)[-1:]  # coalesce
        self._lookup_executor(job.executor).submit_job(job, run_times)
        next_run = job.trigger.get_next_fire_time(run_times[-1], now)
        if next_run is not None:  # not a date job's: `schedule` stores only those
            job._modify(next_run_time=next_run)
            # An id scheduled anew meanwhile keeps that schedule.
            with contextlib.suppress(ConflictingIdError):
                store.add_job(job)

    def _store_back(self, store: _JobStore, jobs: list[Job]) -> None:
        """Store again jobs taken out; an id scheduled anew meanwhile keeps that schedule."""
        for job in jobs:
            log.warning(
                "job %s %s is stored again, due at %s",
                job.name,
                job.id,
                job.next_run_time.isoformat(),
                extra={"job": job.name, "job_id": job.id},
            )
            with contextlib.suppress(ConflictingIdError):
                store.add_job(job)

    def _count_pass_failure(self) -> None:
        if self.pass_failures is not None:
            self.pass_failures.inc()

    def wakeup(self) -> None:
        self._revive()
        super().wakeup()

    def _revive(self) -> None:
        """Start the loop's thread again if it ended while the scheduler runs."""
        with self._revive_lock:
            thread = self._thread
            if thread is None or thread.is_alive() or self.state != STATE_RUNNING or self._closed:
                return
            log.error("the job scheduler's loop had stopped; starting it again")
            self._count_pass_failure()
            self._thread = threading.Thread(
                target=self._main_loop, name="APScheduler", daemon=self._daemon
            )
            self._thread.start()

    def close(self) -> None:
        """Start no more jobs, even if leadership resumes it; running ones go on."""
        with self._jobstores_lock:
            self._closed = True

    def in_store(self, change: Callable[[], T]) -> T:
        """`change` (an add or a remove) under the job store lock; SchedulerStopped once shut down.

        A stopped APScheduler keeps an added job in memory only, and looks for a
        removed one there: the store would never see either.
        """
        with self._jobstores_lock:
            if self.state == STATE_STOPPED:
                raise SchedulerStopped("the job scheduler is stopped")
            return change()


class JobScheduler:
    """Schedules named jobs; the leader runs them when due.

    With `background=False` nothing runs by itself: `run_due(now)` runs what a
    given clock says is due (tests on a test clock).

    `failures` counts failed runs by job name and outcome (FAILURE_OUTCOMES). A
    failed run is tried again `retry_first_s` later, twice as long each time up to
    `retry_max_s`, `retries` times. `pass_failures` counts the leader's passes over
    the job store that failed, and restarts of its loop (see `_LeaderScheduler`).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        background: bool = True,
        leader_interval_s: float = 5.0,
        failures: Counter | None = None,
        pass_failures: Counter | None = None,
        retry_first_s: float = RETRY_FIRST_S,
        retry_max_s: float = RETRY_MAX_S,
        retries: int = RETRIES,
    ) -> None:
        self.engine = engine
        self.background = background
        self.leader_interval_s = leader_interval_s
        self.failures = failures
        self.pass_failures = pass_failures
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self.retries = retries
        self._scheduler: _LeaderScheduler | None = None
        self._executor: JobExecutor | None = None
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
        if self.failures is not None:
            for name in jobs:
                for outcome in FAILURE_OUTCOMES:
                    self.failures.labels(name, outcome)
        self._stop.clear()
        self._executor = JobExecutor(self._run, self._put_back)
        scheduler = _LeaderScheduler(
            jobstores={"default": _JobStore(engine=self.engine, tablename=TABLE)},
            executors={"default": self._executor},
            # Run late rather than never (a restart may come after the due time);
            # one instance of a job at a time.
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=UTC,
        )
        scheduler.pass_failures = self.pass_failures
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

    def queued_overdue_s(self, now: datetime) -> float:
        """Seconds the earliest job taken out of the store but not started yet has been due:
        it waits for a worker, where the store's lateness cannot see it."""
        executor = self._executor
        return 0.0 if executor is None else executor.queued_overdue_s(now)

    def stop_running(self) -> None:
        """Start no more jobs, hand leadership over and wait for the running jobs.

        `schedule` and `cancel` still reach the job store until `stop`.
        """
        self._stop.set()
        if self._leadership is not None:
            self._leadership.stop()
        if self._rescan is not None:
            self._rescan.join(5)
        if self._scheduler is not None:
            # Not shutdown(wait=True): it holds the job store lock while it waits,
            # and a running job that schedules (its next run, a retry) needs it.
            self._scheduler.close()
            if self._executor is not None:
                self._executor.drain()

    def stop(self) -> None:
        """`stop_running`, then shut the job store: `schedule` and `cancel` raise from now on."""
        self.stop_running()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
            self._executor = None

    def _rescan_loop(self) -> None:
        while not self._stop.wait(RESCAN_S):
            if self.is_leader and self._scheduler is not None:
                self._scheduler.wakeup()

    def _require(self) -> _LeaderScheduler:
        if self._scheduler is None:
            raise RuntimeError("the job scheduler is not started")
        return self._scheduler

    def schedule(self, name: str, *, at: datetime, job_id: str, **kwargs: Any) -> None:
        """Run job `name` with `kwargs` at `at`; a job with the same id is replaced.

        Raises RuntimeError (SchedulerStopped) when not started or stopped.
        """
        scheduler = self._require()

        def add() -> None:
            scheduler.add_job(
                dispatch,
                "date",
                run_date=at,
                id=job_id,
                name=name,
                args=[name, kwargs],
                replace_existing=True,
            )

        def store() -> None:
            try:
                add()
            except JobLookupError:
                # APScheduler inserts, and on a conflict updates: the leader took the
                # id out (to run it) in between, so the row to update is gone.
                add()

        scheduler.in_store(store)

    def cancel(self, job_id: str) -> bool:
        """Remove the stored job `job_id`; False if there is none. RuntimeError as `schedule`."""
        scheduler = self._require()
        try:
            scheduler.in_store(lambda: scheduler.remove_job(job_id))
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
            self._run(job.id, *job.args, now=now, **job.kwargs)
            ran.append(job.id)
        return ran

    def _run(
        self,
        job_id: str,
        name: str,
        kwargs: dict[str, Any],
        attempt: int = 0,
        *,
        now: datetime | None = None,
    ) -> None:
        """Run a stored job; when it raises, schedule it again (or give it up)."""
        try:
            run_named(self._jobs, name, kwargs)
        except Exception as exc:
            self._failed(job_id, name, kwargs, attempt=attempt, exc=exc, now=now)

    def _failed(
        self,
        job_id: str,
        name: str,
        kwargs: dict[str, Any],
        *,
        attempt: int,
        exc: Exception,
        now: datetime | None,
    ) -> None:
        """Log and count a failed run; schedule it again under its id, later each time."""
        failures = attempt + 1
        said = f"job {name} {job_id} {loggable_ids(kwargs)} failed ({failures} time(s))"
        extra = {"job": name, "job_id": job_id, "attempt": failures}
        if attempt >= self.retries:
            outcome, why = GAVE_UP, "out of attempts"
        else:
            delay = min(self.retry_first_s * 2**attempt, self.retry_max_s)
            at = (now or datetime.now(UTC)) + timedelta(seconds=delay)
            outcome, why = self._again(job_id, name, kwargs, attempt=failures, at=at)
        if outcome == GAVE_UP:
            log.error(
                "%s; given up (%s): it runs again only if its domain re-schedules it at start",
                said,
                why,
                exc_info=exc,
                extra=extra,
            )
        else:
            log.warning("%s; %s", said, why, exc_info=exc, extra=extra)
        self._count(name, outcome)

    def count_given_up(self, name: str) -> None:
        """Count a job of `name` lost outside a run (its schedule could not be stored)."""
        self._count(name, GAVE_UP)

    def _count(self, name: str, outcome: str) -> None:
        if self.failures is not None:
            self.failures.labels(name if name in self._jobs else "unknown", outcome).inc()

    def _put_back(self, job: Any, due: datetime) -> None:
        """Store again a job that waited for its running id and could not run here."""
        name, kwargs = job.args
        outcome, why = self._again(
            job.id, name, kwargs, attempt=job.kwargs.get("attempt", 0), at=due
        )
        log.log(
            logging.ERROR if outcome == GAVE_UP else logging.WARNING,
            "job %s %s %s could not run before the scheduler stopped; %s",
            name,
            job.id,
            loggable_ids(kwargs),
            why,
            extra={"job": name, "job_id": job.id},
        )
        if outcome == GAVE_UP:  # lost until its domain re-schedules it: as a run given up
            self._count(name, GAVE_UP)

    def _again(
        self, job_id: str, name: str, kwargs: dict[str, Any], *, attempt: int, at: datetime
    ) -> tuple[str, str]:
        """Store the retry unless the id was scheduled anew meanwhile: (outcome, what happened)."""
        scheduler = self._scheduler
        if scheduler is None:
            return GAVE_UP, "the scheduler is stopped"
        try:
            # The lock also orders this after `_process_jobs` took the failed job out.
            scheduler.in_store(
                lambda: scheduler.add_job(
                    dispatch,
                    "date",
                    run_date=at,
                    id=job_id,
                    name=name,
                    args=[name, kwargs],
                    kwargs={"attempt": attempt},
                    replace_existing=False,  # a newer schedule of this id stands, and no duplicate
                )
            )
        except ConflictingIdError:
            return SUPERSEDED, "it was scheduled again meanwhile: that run stands"
        except SchedulerStopped:
            return GAVE_UP, "the scheduler is stopped"
        except Exception as store_exc:
            return GAVE_UP, f"the job store refused the retry: {type(store_exc).__name__}"
        return RETRIED, f"trying again at {at.isoformat()}"


def loggable_ids(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments a log line may show: numbers, ids and keys; no text, no nested data."""
    return {
        key: value
        for key, value in kwargs.items()
        if (isinstance(value, int) and not isinstance(value, bool))
        or (isinstance(value, str) and key.endswith(("id", "key", "day")) and len(value) <= 200)
    }
