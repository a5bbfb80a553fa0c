"""The instance's own watch, in a thread of its own: heartbeat, late pages, EMF lines.

Every `heartbeat_s` it records the instance in `ops_instances` and looks at
the outbox's backlog (bot/observability/outbox_gauges.py): a PagerDuty event
due for longer than `ops_page_late_after_s` opens the late-page episode in the
ops channel, and its end closes it. It also reads how long the earliest stored
scheduled job has been due: past `JOBS_LATE_AFTER_S` no instance is running
jobs, which is logged once as an error, and once again when it ends. Every
`emf_interval_s` (0: never) it writes the EMF lines the alarms on opsbot watch,
and once more when it stops, for the interval cut short.
It depends on neither Slack nor the scheduler, so it goes on when they fail.

A step whose database work fails is logged (with the instance's id) and
counted, and the round goes on with the next. The heartbeat stops with the
database: an instance that cannot write its heartbeat row cannot record alarms
either, so its EMF lines then leave out `opsbot_heartbeat` (the dead-man's
switch fires when no instance has one) and write the rest, with the failures
counted (`opsbot_monitor_db_failures`).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.config import Config
from bot.observability.emf import emf_lines
from bot.observability.metrics import PAGERDUTY, Metrics
from bot.observability.outbox_gauges import OutboxGauges
from bot.ops import instances, notices
from bot.ops.watch import DeliveryWatch
from bot.scheduler import backlog as job_backlog

log = logging.getLogger(__name__)

# A stored job due for longer than this: no instance is running scheduled jobs. A
# leader's failover takes seconds, a dead leader's connection at most a few minutes.
JOBS_LATE_AFTER_S = 300.0


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class OpsMonitor:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        gauges: OutboxGauges,
        metrics: Metrics,
        watch: DeliveryWatch,
        config: Config,
        clock: Clock,
        instance_id: str,
        is_leader: Callable[[], bool],
        heartbeat_s: float,
        emf_interval_s: float,
        emf_namespace: str,
        emit: Callable[[str], None] = _stdout,
        monotonic: Callable[[], float] = time.monotonic,
        jobs_queued_overdue_s: Callable[[datetime], float] = lambda _now: 0.0,
    ) -> None:
        self.sessions = sessions
        self.gauges = gauges
        self.metrics = metrics
        self.watch = watch
        self.config = config
        self.clock = clock
        self.instance_id = instance_id
        self.is_leader = is_leader
        self.heartbeat_s = heartbeat_s
        self.emf_interval_s = emf_interval_s
        self.emf_namespace = emf_namespace
        self.emit = emit
        self.monotonic = monotonic
        self.jobs_queued_overdue_s = jobs_queued_overdue_s
        self.started_at: datetime | None = None
        self._late_maybe_open = True  # unknown at start: looked at once
        self._jobs_overdue_s: float | None = None  # None: could not be read this round
        self._jobs_late = False
        self._clock_drifted = False
        self._last_emf: float | None = None
        self._beating = True  # whether the last round's heartbeat went through
        # Steps whose database work failed, since the start and since the last EMF lines.
        self.db_failures = 0
        self._db_failures_since_emf = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.started_at = self.clock.now()
        self._last_emf = self.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="ops-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the rounds, then write the EMF lines of the interval cut short: what it
        counted (deliveries dead, jobs given up) would otherwise never be written."""
        self._stop.set()
        if self._thread is None:
            return
        self._thread.join(10)
        self._thread = None
        if self.emf_interval_s <= 0:
            return
        try:
            self.write_emf(self.clock.now(), heartbeat=self._beating)
        except Exception:
            log.exception(
                "ops monitor: the last EMF lines could not be written",
                extra={"instance": self.instance_id},
            )

    def _loop(self) -> None:
        wait_s = self.heartbeat_s
        if self.emf_interval_s > 0:
            wait_s = min(wait_s, self.emf_interval_s)
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("the ops monitor's round failed; next round in %.0f s", wait_s)
            if self._stop.wait(wait_s):
                return

    def tick(self) -> None:
        """One round: heartbeat, late pages, and the EMF lines when their interval is up.
        A step that fails is logged and counted; the others go on."""
        now = self.clock.now()
        beating = self._beating = self._step("heartbeat", self._heartbeat, now)
        if beating:
            self._step("clock", self._clock, now)
        self._step("late pages", self._late_pages, now)
        self._jobs_overdue_s = None
        self._step("scheduled jobs", self._scheduled_jobs, now)
        due = self._last_emf is None or self.monotonic() - self._last_emf >= self.emf_interval_s
        if self.emf_interval_s > 0 and due:
            self.write_emf(now, heartbeat=beating)

    def _step(self, name: str, step: Callable[[datetime], None], now: datetime) -> bool:
        """Run one step of the round; whether it went through."""
        try:
            step(now)
        except Exception as exc:
            self.db_failures += 1
            self._db_failures_since_emf += 1
            log.error(
                "ops monitor: the %s step failed (%s); the round goes on",
                name,
                type(exc).__name__,
                exc_info=exc,
                extra={
                    "instance": self.instance_id,
                    "step": name,
                    "error": type(exc).__name__,
                    "db_failures": self.db_failures,
                },
            )
            return False
        return True

    def _heartbeat(self, now: datetime) -> None:
        with self.sessions() as db_session:
            instances.heartbeat(
                db_session,
                instance_id=self.instance_id,
                version=self.metrics.version,
                commit=self.metrics.commit,
                config_version=self.metrics.config_version,
                leader=self.is_leader(),
                slack_auth_ok=self.metrics.slack_auth_value > 0,
                last_slack_ok_at=self.watch.last_slack_ok_at,
                last_pagerduty_ok_at=self.watch.last_pagerduty_ok_at,
                started_at=self.started_at or now,
                now=now,
            )
            db_session.commit()

    def _clock(self, _now: datetime) -> None:
        """Compare this instance's clock with the database's; say so once when they drift
        past a quarter of a delivery lease, and once when they agree again."""
        with self.sessions() as db_session:
            offset_s = instances.clock_offset_s(db_session, self.clock.now)
        if offset_s is None:
            return
        self.metrics.clock_offset.set(offset_s)
        limit_s = self.config.delivery.lease_s / 4
        drifted = abs(offset_s) > limit_s
        if drifted and not self._clock_drifted:
            log.warning(
                "this instance's clock is %.1f s off the database's (more than %.1f s): "
                "instances whose clocks differ by half a delivery lease may send a message "
                "twice; check the host's time sync",
                offset_s,
                limit_s,
                extra={"condition": "clock_offset", "instance": self.instance_id},
            )
        elif self._clock_drifted and not drifted:
            log.info(
                "this instance's clock agrees with the database's again (%.1f s)",
                offset_s,
                extra={"condition": "clock_offset", "instance": self.instance_id},
            )
        self._clock_drifted = drifted

    def _late_pages(self, now: datetime) -> None:
        channel = self.config.ops_channel
        if channel is None:
            return
        backlog = self.gauges.backlog()
        waiting_s = backlog.oldest_s(PAGERDUTY, now)
        late = waiting_s > self.config.ops_page_late_after_s
        if not late and not self._late_maybe_open:
            return
        with self.sessions() as db_session:
            change = notices.late_pages(
                db_session,
                ops_channel=channel,
                late=late,
                waiting_s=waiting_s,
                pending=backlog.pending(PAGERDUTY),
                now=now,
            )
            db_session.commit()
        self._late_maybe_open = late
        if change == "opened":
            log.error(
                "pages are late: a PagerDuty event has waited %.0f s",
                waiting_s,
                extra={"condition": notices.LATE_PAGE},
            )
        elif change == "closed":
            log.info("pages are on time again", extra={"condition": notices.LATE_PAGE})

    def _scheduled_jobs(self, now: datetime) -> None:
        with self.sessions() as db_session:
            stored_s = job_backlog.overdue_s(db_session, now=now)
        # A job the leader took out of the store but has no worker for yet is as late.
        queued_s = self.jobs_queued_overdue_s(now)
        overdue_s = max(stored_s, queued_s)
        self._jobs_overdue_s = overdue_s
        self.metrics.scheduled_jobs_overdue.set(overdue_s)
        late = overdue_s > JOBS_LATE_AFTER_S
        if late and not self._jobs_late:
            log.error(
                "scheduled jobs are late: the earliest has been due for %.0f s (%.0f s in "
                "the store, %.0f s waiting for a worker here; this instance leads: %s); "
                "reminders, escalations and window ends wait",
                overdue_s,
                stored_s,
                queued_s,
                "yes" if self.is_leader() else "no",
                extra={"condition": "jobs_late", "instance": self.instance_id},
            )
        elif self._jobs_late and not late:
            log.info(
                "scheduled jobs run on time again",
                extra={"condition": "jobs_late", "instance": self.instance_id},
            )
        self._jobs_late = late

    def write_emf(self, now: datetime, *, heartbeat: bool = True) -> None:
        """The interval's EMF lines; without `heartbeat` (its write failed), no
        `opsbot_heartbeat` in them."""
        self._last_emf = self.monotonic()
        interval = self.metrics.take_interval()
        failures, self._db_failures_since_emf = self._db_failures_since_emf, 0
        if not heartbeat:
            log.warning(
                "ops monitor: no heartbeat in this interval's EMF lines (its database write "
                "failed, %d failures since the start)",
                self.db_failures,
                extra={"instance": self.instance_id, "db_failures": self.db_failures},
            )
        for line in emf_lines(
            namespace=self.emf_namespace,
            now=now,
            slack_auth_ok=self.metrics.slack_auth_value,
            deliveries_dead=interval.deliveries_dead,
            slowest_page_s=interval.slowest_page_s,
            backlog=self.gauges.backlog(),
            instance=self.instance_id,
            heartbeat=heartbeat,
            responses_dead=interval.responses_dead,
            monitor_db_failures=failures,
            jobs_given_up=interval.jobs_given_up,
            jobs_overdue_s=self._jobs_overdue_s,
            slack_socket_connected=self.metrics.slack_socket_value,
            intake_apply_failed=interval.intake_apply_failed,
            sns_unsubscribed=interval.sns_unsubscribed,
        ):
            self.emit(line)
