"""The composition root: builds clients, services and the ASGI app from settings.

This is the one module of `bot/` that knows the HTTP edge (`handlers/`): it
wires the edge to the domain. Nothing else in `bot/` imports `handlers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from fnmatch import fnmatchcase

from sqlalchemy.orm import Session, configure_mappers
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from bot.adapters import aws, pagerduty, slack, tls
from bot.adapters.aws import AwsClients
from bot.after_ack import AfterAck
from bot.alarms import flows as alarm_flows
from bot.alarms.intake import AlarmIntake
from bot.alarms.parse import TopicAccounts, carrier_account
from bot.alarms.queue import AlarmQueueConsumer
from bot.approvals import flows as approval_flows
from bot.approvals import jobs as approval_jobs
from bot.apps.access import Access
from bot.apps.services import AppServices
from bot.changes import flows as changes_flows
from bot.changes import jobs as changes_jobs
from bot.changes import service as changes_service
from bot.clock import Clock, SystemClock
from bot.config import Config
from bot.db.engine import make_engine, make_sessionmaker, open_connections
from bot.dbroles import confirm as dbrole_confirm  # noqa: F401  # registers the dbrole kind
from bot.dbroles import requests as dbrole_requests
from bot.deploys import confirm as deploy_confirm  # noqa: F401  # registers the deploy kinds
from bot.deploys import flows as deploy_flows
from bot.deploys import jobs as deploy_jobs
from bot.flags import confirm as flag_confirm  # noqa: F401  # registers the flag kind
from bot.flags import flows as flag_flows
from bot.flags import jobs as flag_jobs
from bot.home.flows import HomeViews
from bot.home.jobs import HomeRefresher
from bot.inbound.after_ack_journal import AfterAckJournal
from bot.inbound.prune import prune_receipts
from bot.incidents import flows as incident_flows
from bot.incidents import jobs as incident_jobs
from bot.incidents.actions import IncidentActions
from bot.incidents.channels import IncidentChannels
from bot.incidents.models import Incident
from bot.incidents.pagerduty_calls import PagerDutyActionSender
from bot.incidents.pagerduty_sync import WebhookSync
from bot.maintenance import flows as maintenance_flows
from bot.maintenance import jobs as maintenance_jobs
from bot.maintenance.actions import MaintenanceWindows
from bot.observability.loop_watch import LoopWatch
from bot.observability.metrics import Metrics
from bot.observability.outbox_gauges import OutboxGauges
from bot.oncall import jobs as oncall_jobs
from bot.oncall.flows import OnCallAnswers
from bot.oncall.service import OnCallLookup
from bot.ops.flows import OpsStatus
from bot.ops.instances import new_instance_id, package_version
from bot.ops.monitor import OpsMonitor
from bot.ops.watch import DeliveryWatch
from bot.outbox import express
from bot.outbox.models import (
    PAGERDUTY_EVENT,
    PAGERDUTY_REST,
    SLACK_MESSAGE,
    SLACK_REPLY,
    SLACK_RESPONSE,
)
from bot.outbox.pacing import SLACK_UPDATES, Pacer
from bot.outbox.pagerduty_sender import PagerDutySender
from bot.outbox.service import PAGERDUTY_REST_TARGET, SLACK_RESPONSE_TARGET
from bot.outbox.slack_sender import SlackSender
from bot.outbox.wake import wake_after_commit
from bot.outbox.worker import OutboxWorker, Send
from bot.pagerduty.rest import PagerDutyRest
from bot.people.directory import PeopleDirectory
from bot.rights.service import Rights
from bot.rights.workspace import Workspace
from bot.runtime import Runtime
from bot.scheduler.deferred import apply_after_commit
from bot.scheduler.registry import jobs_table
from bot.scheduler.scheduler import JobScheduler
from bot.settings import DEFAULT_SNS_URL_PATTERN, Settings
from bot.sns.fetch import make_fetch
from bot.sns.jobs import CertificateKeeper
from bot.sns.verify import SnsVerifier
from handlers import health, limits, pagerduty_webhooks, slack_events, slack_socket, sns

log = logging.getLogger(__name__)


def make_metrics(
    settings: Settings, config: Config, *, config_version: str | None = None
) -> Metrics:
    """The process's metrics, labelled with its version, commit and configuration version."""
    return Metrics(
        version=package_version(),
        commit=settings.build_commit,
        config_version=config_version or settings.config_version or _config_version(config),
    )


def _pacer(config: Config) -> Pacer:
    """Each lane (bot/outbox/pacing.py) paced by its method's limit from `delivery:`."""
    delivery = config.delivery

    def limits(lane: str) -> tuple[float, float]:
        if lane == SLACK_UPDATES:
            return delivery.slack_updates_per_min / 60.0, float(delivery.slack_updates_burst)
        if lane == SLACK_RESPONSE_TARGET:
            return delivery.slack_responses_per_s, float(delivery.slack_responses_burst)
        if lane == PAGERDUTY_REST_TARGET:
            return delivery.pagerduty_rest_per_min / 60.0, float(delivery.pagerduty_rest_burst)
        if lane.startswith("pd:"):
            return delivery.pagerduty_per_min / 60.0, float(delivery.pagerduty_burst)
        return delivery.slack_per_channel_per_s, float(delivery.slack_burst)

    return Pacer(limits=limits)


def _open_connections(runtime: Runtime) -> None:
    # A PostgreSQL connection takes tens of milliseconds to open: open the ones
    # an alarm's first page needs (intake, then the outbox's claim and record)
    # at start, not during the first alarm.
    # One for the intake's writer (bot/alarms/batch.py), which records every batch.
    open_connections(runtime.engine, 1)
    if runtime.outbox_engine is not None:
        open_connections(runtime.outbox_engine, 2)


def _warm_up_intake(runtime: Runtime) -> None:
    runtime.intake.warm_up()
    runtime.intake.start()


def _topic_notes(settings: Settings, topics: TopicAccounts) -> list[str]:
    """Whose alarms each carrier brings, where it is not simply its own account's."""
    notes = []
    carriers = list(settings.sns_topic_arns)
    if topics.raw_queue is not None:
        carriers.append(topics.raw_queue)
    for carrier in carriers:
        own = carrier_account(carrier)
        named = topics.named.get(carrier, frozenset())
        if named is None:
            notes.append(f"alarms by {carrier}: of any account (OPSBOT_SNS_TOPIC_ACCOUNTS)")
        elif named:
            accounts = ", ".join(sorted(named | ({own} if own else set())))
            notes.append(f"alarms by {carrier}: of accounts {accounts} (OPSBOT_SNS_TOPIC_ACCOUNTS)")
        elif own is None:
            notes.append(
                f"alarms by {carrier}: NONE APPLIED, it names no account: every alarm it brings"
                " is a notice (name its accounts in OPSBOT_SNS_TOPIC_ACCOUNTS)"
            )
        elif carrier == topics.raw_queue:
            notes.append(
                f"alarms by {carrier}: of its account {own} only (raw delivery names no"
                " topic; OPSBOT_SNS_TOPIC_ACCOUNTS may name more for the queue)"
            )
    return notes


def accounts_no_topic_carries(
    config: Config, settings: Settings, topics: TopicAccounts
) -> list[str]:
    """Routes matching an account whose alarms no allowed topic (nor the raw queue) may
    carry: each of those alarms would be a notice, never paged. Said loudly at start:
    an organisation-wide topic needs `OPSBOT_SNS_TOPIC_ACCOUNTS` since alarms are bound
    to their topic's account."""
    carriers = list(settings.sns_topic_arns)
    if topics.raw_queue is not None:
        carriers.append(topics.raw_queue)
    if any(topics.named.get(carrier, frozenset()) is None for carrier in carriers):
        return []  # a topic carries any account's alarms
    carried = {carrier_account(carrier) for carrier in carriers}
    for carrier in carriers:
        carried |= topics.named.get(carrier) or frozenset()
    carried.discard(None)
    problems = []
    for route in config.alarm_routes:
        pattern = route.match.account
        if pattern is None or not carriers:
            continue
        if not any(fnmatchcase(str(account), pattern) for account in carried):
            problems.append(
                f"alarm route {route.name or route.channel}: matches account {pattern}, whose "
                "alarms no allowed topic may carry: they would be notices, NEVER PAGED (name "
                "the account for its topic in OPSBOT_SNS_TOPIC_ACCOUNTS)"
            )
    return problems


def _config_version(config: Config) -> str:
    """For a configuration built in code (the sandbox, tests): a digest of what it holds."""
    return "sha256:" + hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:12]


def _postmortem_changes(
    db_session: Session, *, incident: Incident, now: datetime
) -> list[tuple[datetime, str]]:
    """The changes listed on an incident, as rows of its postmortem draft's timeline."""
    snap = incident.snapshot or {}
    if not snap.get("app") or not snap.get("env"):
        return []
    view = changes_service.changes_view(
        db_session,
        app=str(snap["app"]),
        env=str(snap["env"]),
        alarm_at=changes_service.alarm_time(db_session, incident=incident),
        window_min=float(snap.get("changes_window_min") or incident_flows.DEFAULT_WINDOW_MIN),
        incident_id=None,
        now=now,
    )
    rows = []
    for item in view.items:
        change = f"{item.kind} {item.subject}" + (f" (was {item.before})" if item.before else "")
        actor = f"<@{item.actor}>" if re.fullmatch(r"[UW][A-Z0-9]+", item.actor) else item.actor
        rows.append((item.at, f"{change} by {actor} in {view.label}, {item.status}"))
    return rows


def build_runtime(
    settings: Settings,
    config: Config,
    *,
    clock: Clock | None = None,
    run_jobs: bool = True,
    metrics: Metrics | None = None,
) -> Runtime:
    """Everything one process runs. `run_jobs=False` leaves scheduled jobs to `run_due`.

    `metrics`: made beforehand when its port must be taken first (`opsbot serve`).
    """
    clock = clock or SystemClock()
    metrics = metrics or make_metrics(settings, config)
    # Every incident message lists what changed before its alarm (bot/changes).
    incident_flows.register_section(changes_flows.changes_section)
    # ... and the maintenance window holding its page, while one does (bot/maintenance).
    incident_flows.register_section(maintenance_flows.message_section)
    # Whatever owes a page (a silence ending) asks the maintenance windows first.
    incident_flows.register_page_hold(maintenance_flows.hold_owed_page)
    # People's changes to an incident reach the alarm group message that lists it.
    incident_flows.register_listing(alarm_flows.show_in_group)
    # ... and their postmortem drafts list those changes in their timeline.
    incident_flows.register_postmortem_changes(_postmortem_changes)
    metrics.slack_auth(settings.slack_bot_token is not None)
    # Done once here rather than inside the first transaction, the first page's.
    configure_mappers()
    engine = make_engine(
        settings.effective_database_url,
        timeouts=settings.db_timeouts,
        on_replaced=functools.partial(metrics.db_pool_invalidated, "main"),
    )
    sessions = make_sessionmaker(engine)
    context = tls.client_context(settings.ssl_cert_file)
    timeout_s = config.delivery.request_timeout_s
    fetch = make_fetch(context, timeout_s=settings.sns_cert_fetch_timeout_s)
    certificates = CertificateKeeper(sessions=sessions, clock=clock)

    def load_kept_certificates(runtime: Runtime) -> None:
        # Before the intake starts: the first notification after a restart (a
        # deploy's) then finds its certificate without a fetch.
        certificates.preload(runtime.sns_verifier)

    sns_verifier = SnsVerifier(
        url_pattern=settings.sns_url_regex,
        fetch=fetch,
        clock=clock,
        allow_signature_v1=settings.sns_allow_signature_v1,
        # A fetch gives up after about its timeout; a message waits a little longer.
        wait_s=2 * settings.sns_cert_fetch_timeout_s,
        on_fetched=certificates.fetched,
    )
    notes: list[str] = [f"database: {engine.url.render_as_string(hide_password=True)}"]
    closing: list[Callable[[], None]] = [certificates.stop]  # to close when the runtime stops

    senders: dict[str, Send] = {}
    slack_client = None
    if settings.slack_bot_token is not None:
        token = settings.slack_bot_token.get_secret_value()
        slack_client = slack.web_client(
            token=token,
            base_url=settings.slack_api_url,
            tls=context,
            timeout_s=timeout_s,
            retries=True,
        )
        outbound = slack.web_client(
            token=token,
            base_url=settings.slack_api_url,
            tls=context,
            timeout_s=timeout_s,
            retries=False,
        )
        answers = slack.ResponseUrls(
            tls=context, timeout_s=timeout_s, hooks=slack.Hooks.of(settings.slack_api_url)
        )
        closing.extend((slack_client.close, outbound.close, answers.close))
        sender = SlackSender(
            outbound,
            answers.post,
            on_auth=metrics.slack_auth,
            naming=config.commands.naming,
        )
        for kind in (SLACK_MESSAGE, SLACK_REPLY, SLACK_RESPONSE):
            senders[kind] = sender.send
        notes.append(f"Slack: posting through {settings.slack_api_url}")
    else:
        notes.append("Slack: DISABLED (SLACK_BOT_TOKEN is not set); messages wait in the outbox")
    if settings.slack_socket_mode:
        notes.append(
            "Slack commands, buttons and events: over Socket Mode (SLACK_APP_TOKEN)"
            + ("; POST /slack/events too" if settings.slack_signing_secret else "")
        )
    if not settings.slack_inbound_enabled:
        notes.append(
            "Slack commands and buttons: DISABLED (set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN)"
        )

    client_for = pagerduty.events_clients(
        secret_for=settings.env_secret,
        base_url=settings.pagerduty_events_url,
        tls=context,
        timeout_s=timeout_s,
    )
    senders[PAGERDUTY_EVENT] = PagerDutySender(client_for).send
    for env_name in sorted(config.paging_key_envs()):
        # Made now, not at the first page: building a client imports its HTTP
        # stack, which took hundreds of ms at the first page of a storm.
        client_for(env_name)
        state = "set" if settings.env_secret(env_name) else "NOT SET: pages wait in the outbox"
        notes.append(f"PagerDuty routing key {env_name}: {state}")
    if not config.routing_key_envs():
        notes.append("PagerDuty paging: DISABLED (no alarm route names a routing key)")

    rest = None
    if settings.pagerduty_api_token is not None:
        rest_client = functools.partial(
            pagerduty.rest_client,
            settings.pagerduty_api_token.get_secret_value(),
            base_url=settings.pagerduty_api_url,
            tls=context,
            timeout_s=timeout_s,
            default_from=config.oncall.pagerduty_from,
        )
        rest = PagerDutyRest(rest_client(), once=rest_client(network_retries=0))
        notes.append(f"PagerDuty REST: acting through {settings.pagerduty_api_url}")
    else:
        notes.append(
            "PagerDuty REST: DISABLED (PAGERDUTY_API_TOKEN is not set); buttons act in Slack only"
        )
    if settings.pagerduty_webhook_secrets:
        notes.append(
            f"POST /pagerduty/webhooks: {len(settings.pagerduty_webhook_secrets)} secret(s)"
        )
    else:
        notes.append("POST /pagerduty/webhooks: refuses everything (PAGERDUTY_WEBHOOK_SECRETS)")
    workspace = Workspace(slack_client)
    rights = Rights(config=config, workspace=workspace)
    people = PeopleDirectory(
        sessions=sessions,
        slack=slack_client,
        pagerduty=rest,
        clock=clock,
        cache_h=config.oncall.people_cache_h,
        workspace=workspace,
    )
    # One pacer for the worker and the REST sender: a call's second request counts
    # against the token's lane like its first.
    pacer = _pacer(config)
    senders[PAGERDUTY_REST] = PagerDutyActionSender(
        sessions=sessions,
        pagerduty=rest,
        people=people,
        clock=clock,
        metrics=metrics,
        pacer=pacer,
    ).send

    # The outbox has database connections of its own: in a storm the intake
    # holds every connection of the main pool, and a page would queue behind it.
    outbox_engine = make_engine(
        settings.effective_database_url,
        timeouts=settings.db_timeouts,
        pool_size=config.delivery.workers + 2,
        max_overflow=2,
        on_replaced=functools.partial(metrics.db_pool_invalidated, "outbox"),
    )
    # The outbox and the after-ack journal renew their leases on connections of their
    # own, one each: in a storm the intake holds every connection of the main pool, a
    # slow pass holds the outbox's, and an instance whose leases ran out has its sends
    # made again, or its work answered as lost, by another.
    leases_engine = make_engine(
        settings.effective_database_url,
        pool_size=2,
        max_overflow=0,
        pool_timeout=5,
        on_replaced=functools.partial(metrics.db_pool_invalidated, "leases"),
        timeouts=settings.db_timeouts,
    )
    closing.append(leases_engine.dispose)
    watch = DeliveryWatch(config=config)
    outbox = OutboxWorker(
        sessions=make_sessionmaker(outbox_engine),
        leases=make_sessionmaker(leases_engine),
        senders=senders,
        pacer=pacer,
        settings=config.delivery,
        clock=clock,
        metrics=metrics,
        observer=watch,
    )
    wake_after_commit(sessions, outbox.wake)
    scheduler = JobScheduler(
        engine,
        background=run_jobs,
        failures=metrics.scheduled_job_failures,
        pass_failures=metrics.scheduler_pass_failures,
    )
    apply_after_commit(sessions, scheduler)
    express.send_at_once(sessions, outbox)
    topics = TopicAccounts(
        named=settings.topic_accounts,
        raw_queue=settings.alarm_queue_url if settings.alarm_queue_raw_delivery else None,
    )
    notes.extend(_topic_notes(settings, topics))
    for problem in accounts_no_topic_carries(config, settings, topics):
        log.warning("%s", problem)
        notes.append(problem)
    intake = AlarmIntake(
        sessions=sessions, config=config, clock=clock, metrics=metrics, topics=topics
    )

    consumer = None
    if settings.alarm_queue_url and not (
        settings.sns_topic_arns or settings.alarm_queue_raw_delivery
    ):
        # Every envelope would be refused: leave the alarms in the queue (its age
        # alarm pages) rather than take them off it.
        notes.append(
            "alarm queue: NOT CONSUMED (OPSBOT_SNS_TOPIC_ARNS is empty, so every message"
            " would be refused; set it, or OPSBOT_ALARM_QUEUE_RAW_DELIVERY=true)"
        )
    elif settings.alarm_queue_url:
        sqs = aws.client("sqs", region=settings.aws_region, endpoint_url=settings.aws_endpoint_url)
        consumer = AlarmQueueConsumer(
            sqs=sqs,
            queue_url=settings.alarm_queue_url,
            record=intake.record,
            record_batch=intake.record_batch,
            allowed_topics=settings.sns_topic_arns,
            verifier=None if settings.alarm_queue_raw_delivery else sns_verifier,
            wait_s=config.alarms.queue_wait_s,
            metrics=metrics,
        )
        trust = (
            "raw delivery: the queue policy is the only check"
            if settings.alarm_queue_raw_delivery
            else "SNS signatures verified"
        )
        notes.append(f"alarm queue: consuming {settings.alarm_queue_url} ({trust})")
    else:
        notes.append("alarm queue: DISABLED (OPSBOT_ALARM_QUEUE_URL is not set)")
    if settings.sns_url_pattern != DEFAULT_SNS_URL_PATTERN:
        notes.append(
            f"SNS certificates: from URLs matching {settings.sns_url_pattern} (not SNS's own hosts)"
        )
    if settings.sns_allow_signature_v1:
        notes.append("SNS: SignatureVersion 1 (SHA1) accepted (OPSBOT_SNS_ALLOW_SIGNATURE_V1)")
    if settings.sns_topic_arns:
        notes.append(f"POST /sns accepts topics: {', '.join(settings.sns_topic_arns)}")
    else:
        notes.append("POST /sns: refuses every topic (OPSBOT_SNS_TOPIC_ARNS is empty)")

    metrics.follow_leadership(lambda: scheduler.is_leader)
    # Its own connection: a scrape in a storm neither waits for nor holds the intake's.
    gauges = OutboxGauges(
        make_engine(
            settings.effective_database_url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=5,
            on_replaced=functools.partial(metrics.db_pool_invalidated, "gauges"),
            timeouts=settings.db_timeouts,
        ),
        clock=clock,
    )
    metrics.registry.register(gauges)
    monitor = OpsMonitor(
        sessions=sessions,
        gauges=gauges,
        metrics=metrics,
        watch=watch,
        config=config,
        clock=clock,
        instance_id=new_instance_id(),
        is_leader=lambda: scheduler.is_leader,
        heartbeat_s=settings.heartbeat_s,
        emf_interval_s=settings.emf_interval_s,
        emf_namespace=settings.emf_namespace,
        jobs_queued_overdue_s=scheduler.queued_overdue_s,
    )
    if config.ops_channel:
        notes.append(f"operator notices: {config.ops_channel}")
    else:
        notes.append("operator notices: DISABLED (no ops_channel): dead deliveries are only logged")

    access = Access(workspace)
    incident_actions = IncidentActions(
        sessions=sessions, people=people, rights=rights, config=config, clock=clock
    )
    oncall_lookup = OnCallLookup(pagerduty=rest, people=people, config=config, clock=clock)
    oncall = OnCallAnswers(sessions=sessions, lookup=oncall_lookup, clock=clock)
    incident_channels = IncidentChannels(
        sessions=sessions,
        slack=slack_client,
        actions=incident_actions,
        config=config,
        clock=clock,
        oncall=oncall_lookup.first_responders if rest is not None else None,
        count=metrics.incident_channel,
    )
    aws_clients = AwsClients(region=settings.aws_region, endpoint_url=settings.aws_endpoint_url)
    # What each scheduled job works with: its domain's dependencies, never the runtime.
    app_services = AppServices(
        config=config,
        clock=clock,
        sessions=sessions,
        aws=aws_clients,
        scheduler=scheduler,
        access=access,
        rights=rights,
    )
    incident_job_deps = incident_jobs.IncidentJobDeps(
        sessions=sessions,
        clock=clock,
        pagerduty=rest,
        people=people,
        actions=incident_actions,
        instance_id=outbox.instance_id,
        slack=slack_client,
        count_channel=metrics.incident_channel,
    )
    handoff_deps = oncall_jobs.HandoffDeps(
        config=config, clock=clock, scheduler=scheduler, answers=oncall
    )
    maintenance = MaintenanceWindows(sessions=sessions, rights=rights, config=config, clock=clock)
    maintenance_flows.count_held_after_commit(sessions, metrics)
    flag_flows.count_outcomes_after_commit(sessions, metrics)
    deploy_flows.count_outcomes_after_commit(sessions, metrics)
    dbrole_requests.count_runs_after_commit(sessions, metrics)
    approval_flows.count_after_commit(sessions, metrics)
    changes_flows.count_lost_after_commit(sessions, metrics)
    jobs = jobs_table(
        incident_jobs.jobs(incident_job_deps),
        maintenance_jobs.jobs(maintenance_jobs.MaintenanceJobDeps(sessions=sessions, clock=clock)),
        oncall_jobs.jobs(handoff_deps),
        approval_jobs.jobs(app_services),
        deploy_jobs.jobs(app_services),
        flag_jobs.jobs(app_services),
        changes_jobs.jobs(
            changes_jobs.LookDeps(
                config=config, clock=clock, sessions=sessions, aws=aws_clients, metrics=metrics
            )
        ),
    )

    def reschedule_incident_jobs(_runtime: Runtime) -> None:
        incident_jobs.reschedule(sessions)

    def reschedule_maintenance_ends(_runtime: Runtime) -> None:
        maintenance_jobs.reschedule(sessions)

    def reschedule_approval_expiries(_runtime: Runtime) -> None:
        approval_jobs.reschedule(app_services)

    def reschedule_lock_reminders(_runtime: Runtime) -> None:
        deploy_jobs.reschedule_lock_reminders(app_services)

    def resume_deploy_watches(_runtime: Runtime) -> None:
        deploy_jobs.resume_watches(app_services)

    def reschedule_ecs_looks(_runtime: Runtime) -> None:
        changes_jobs.reschedule(sessions, clock)

    def resume_flag_watches(_runtime: Runtime) -> None:
        flag_jobs.resume_watches(app_services)

    def schedule_handoffs(_runtime: Runtime) -> None:
        oncall_jobs.schedule_handoffs(handoff_deps)

    def prune_inbound_receipts(_runtime: Runtime) -> None:
        prune_receipts(sessions, clock)

    return Runtime(
        settings=settings,
        config=config,
        clock=clock,
        engine=engine,
        outbox_engine=outbox_engine,
        sessions=sessions,
        tls=context,
        fetch=fetch,
        intake=intake,
        sns_verifier=sns_verifier,
        sns_url_pattern=settings.sns_url_regex,
        slack_client=slack_client,
        outbox=outbox,
        scheduler=scheduler,
        access=access,
        rights=rights,
        pagerduty=rest,
        people=people,
        incident_actions=incident_actions,
        maintenance=maintenance,
        home=HomeRefresher(
            views=HomeViews(
                sessions=sessions,
                rights=rights,
                people=people,
                oncall=oncall if rest is not None else None,
                maintenance=maintenance,
                slack=slack_client,
                clock=clock,
                metrics=metrics,
                naming=config.commands.naming,
            ),
            settings=config.home,
            clock=clock,
            is_leader=lambda: scheduler.is_leader,
        ),
        incident_channels=incident_channels,
        webhook_sync=WebhookSync(
            sessions=sessions,
            people=people,
            pagerduty=rest,
            config=config,
            clock=clock,
            metrics=metrics,
        ),
        oncall=oncall,
        aws=aws_clients,
        jobs=jobs,
        after_ack=AfterAck(
            journal=AfterAckJournal(
                sessions=sessions,
                leases=make_sessionmaker(leases_engine),
                clock=clock,
                lease_s=config.delivery.after_ack_lease_s,
                metrics=metrics,
            ),
            metrics=metrics,
        ),
        queue_consumer=consumer,
        metrics=metrics,
        outbox_gauges=gauges,
        ops_monitor=monitor,
        ops_status=OpsStatus(
            sessions=sessions,
            gauges=gauges,
            rights=rights,
            clock=clock,
            identity=lambda: (metrics.version, metrics.commit, metrics.config_version),
            heartbeat_s=settings.heartbeat_s,
        ),
        notes=notes,
        on_stop=closing,
        on_start=[
            _open_connections,
            load_kept_certificates,
            _warm_up_intake,
            reschedule_incident_jobs,
            reschedule_maintenance_ends,
            reschedule_approval_expiries,
            reschedule_lock_reminders,
            resume_deploy_watches,
            reschedule_ecs_looks,
            resume_flag_watches,
            schedule_handoffs,
            prune_inbound_receipts,
        ],
    )


def create_app(runtime: Runtime, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The ASGI app: the HTTP edge over a runtime, started and stopped with the server.

    `extra_routes` are served beside the bot's (the sandbox's console, under `opsbot dev`).
    """

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        runtime.start()
        if socket is not None:
            socket.start()
        watch = LoopWatch(
            lag=runtime.metrics.event_loop_lag, warn_s=runtime.settings.loop_stall_warn_s
        )
        watching = asyncio.create_task(watch.run(), name="loop-watch")
        try:
            yield
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
            if socket is not None:
                socket.stop()
            runtime.stop()

    bolt = slack_events.build_bolt_app(runtime)  # one app, whichever way Slack reaches it
    app_token = runtime.settings.slack_app_token
    socket = None
    if bolt is not None and app_token is not None:
        socket = slack_socket.SlackSocket(runtime, bolt.app, app_token=app_token.get_secret_value())
    routes: list[BaseRoute] = [
        *health.routes(runtime, slack_socket=(lambda: socket.connected) if socket else None),
        *sns.routes(runtime),
        *slack_events.routes(runtime, bolt),
        *pagerduty_webhooks.routes(runtime),
        *extra_routes,
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(limits.BoundedBodies, limits.RequestLimits.from_settings(runtime.settings))
        ],
    )
    app.state.runtime = runtime
    return app
