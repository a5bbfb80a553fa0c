"""The running parts of one opsbot process, as built by the composition root."""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from slack_sdk import WebClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.adapters.aws import AwsClients
from bot.after_ack import AfterAck
from bot.alarms.intake import AlarmIntake
from bot.alarms.queue import AlarmQueueConsumer
from bot.apps.access import Access
from bot.clock import Clock
from bot.config import Config
from bot.home.jobs import HomeRefresher
from bot.incidents.actions import IncidentActions
from bot.incidents.channels import IncidentChannels
from bot.incidents.pagerduty_sync import WebhookSync
from bot.maintenance.actions import MaintenanceWindows
from bot.observability.metrics import Metrics
from bot.observability.outbox_gauges import OutboxGauges
from bot.oncall.flows import OnCallAnswers
from bot.ops.flows import OpsStatus
from bot.ops.monitor import OpsMonitor
from bot.outbox.worker import OutboxWorker
from bot.pagerduty.rest import PagerDutyRest
from bot.people.directory import PeopleDirectory
from bot.rights.service import Rights
from bot.scheduler.registry import JobFunction
from bot.scheduler.scheduler import JobScheduler
from bot.settings import Settings
from bot.sns.verify import SnsVerifier

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    config: Config
    clock: Clock
    engine: Engine
    sessions: sessionmaker[Session]
    tls: ssl.SSLContext
    fetch: Callable[[str], bytes]
    intake: AlarmIntake
    sns_verifier: SnsVerifier
    sns_url_pattern: re.Pattern[str]
    slack_client: WebClient | None
    outbox: OutboxWorker
    scheduler: JobScheduler
    access: Access  # deploy rights: an app environment's deployers
    rights: Rights  # incident rights and administration
    pagerduty: PagerDutyRest | None  # REST API v2; None without PAGERDUTY_API_TOKEN
    people: PeopleDirectory
    incident_actions: IncidentActions
    incident_channels: IncidentChannels  # an incident's own channel, and notes typed there
    webhook_sync: WebhookSync
    oncall: OnCallAnswers
    aws: AwsClients  # boto3 clients by service name (ecs, ecr...), built on first use
    after_ack: AfterAck  # what Slack commands and clicks do after their acknowledgement
    # The functions stored jobs name, each bound to its domain's dependencies.
    jobs: dict[str, JobFunction] = field(default_factory=dict)
    queue_consumer: AlarmQueueConsumer | None = None
    outbox_engine: Engine | None = None  # the outbox's own connections, when not `engine`
    notes: list[str] = field(default_factory=list)  # what is on or off, said once at start
    # Run once the scheduler is up (e.g. re-scheduling jobs a crash may have lost).
    on_start: list[Callable[[Runtime], None]] = field(default_factory=list)
    # Run last when it stops (e.g. closing kept-alive HTTP connections).
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    # Run first when it stops, each to its end: work in pools of its own that may still
    # queue work behind acks (a modal's submission declaring an incident).
    drains: list[Callable[[], None]] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)  # this runtime's own registry
    outbox_gauges: OutboxGauges | None = None
    ops_monitor: OpsMonitor | None = None
    ops_status: OpsStatus | None = None
    metrics_url: str | None = None  # where GET /metrics is served, when it is
    maintenance: MaintenanceWindows | None = None  # maintenance windows (/incident silence)
    home: HomeRefresher | None = None  # App Home: published on open, refreshed on change

    def start(self) -> None:
        for note in self.notes:
            log.info("%s", note)
        # The job store first: the outbox's first sends and the work behind acks
        # may schedule jobs (an escalation re-armed), which a store not yet
        # started would refuse.
        self.scheduler.start(self.jobs)
        self.outbox.start()
        self.after_ack.start()
        for hook in self.on_start:
            try:
                hook(self)
            except Exception:
                log.exception("start-up step %s failed; going on without it", hook.__name__)
        if self.queue_consumer is not None:
            self.queue_consumer.start()
        if self.ops_monitor is not None:
            self.ops_monitor.start()
        if self.home is not None:
            self.home.start()

    def stop(self) -> None:
        # Before the lane behind acks stops: what they run may still queue work there.
        for drain in self.drains:
            drain()
        if self.home is not None:
            self.home.stop()
        if self.queue_consumer is not None:
            self.queue_consumer.stop()
        self.intake.stop()
        self.after_ack.stop()
        # The running jobs end while the outbox still sends what they write; the
        # outbox's last sends (up to its stop's timeout) may still schedule jobs
        # (an escalation re-armed), so the job store closes only after it.
        self.scheduler.stop_running()
        self.outbox.stop()
        self.scheduler.stop()
        # Last of the workers: its final EMF lines count what the outbox and the
        # scheduler did up to their end (deliveries dead, jobs given up).
        if self.ops_monitor is not None:
            self.ops_monitor.stop()
        # Nothing sends any more: close the clients, and cancel what would still
        # write (a certificate kept late), before the pools go.
        for hook in self.on_stop:
            hook()
        if self.outbox_engine is not None:
            self.outbox_engine.dispose()
        if self.outbox_gauges is not None:
            self.outbox_gauges.close()
        self.engine.dispose()
