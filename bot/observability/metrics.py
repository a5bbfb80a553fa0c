"""opsbot's Prometheus metrics: one `Metrics` per runtime, each with its own registry.

The names are an interface (dashboards and alarms use them): renaming one is a
breaking change. Label values are bounded sets (delivery families, outcomes),
never a channel, a user or an incident. Every label combination is created up
front, so a counter reads 0 before its first event rather than missing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bot.outbox.models import (
    PAGERDUTY_EVENT,
    PAGERDUTY_REST,
    SLACK_MESSAGE,
    SLACK_REPLY,
    SLACK_RESPONSE,
)
from bot.scheduler.scheduler import GAVE_UP

# Delivery kinds (bot/outbox/models.py) by the family they are counted under.
SLACK = "slack"
PAGERDUTY = "pagerduty"
FAMILIES: dict[str, str] = {
    SLACK_MESSAGE: SLACK,
    SLACK_REPLY: SLACK,
    SLACK_RESPONSE: "slack_response",
    PAGERDUTY_EVENT: PAGERDUTY,
    PAGERDUTY_REST: "pagerduty_rest",
}
TARGETS = ("slack", "pagerduty", "slack_response", "pagerduty_rest")
# A dead answer through a response_url (expired after 30 minutes, used up, refused) is a
# user's lost ephemeral answer, not an operator's emergency: counted apart from the others.
RESPONSES = FAMILIES[SLACK_RESPONSE]
VIAS = ("https", "sqs")
NOTIFICATION_OUTCOMES = ("new", "duplicate", "refused", "error", "left")
DELIVERY_OUTCOMES = ("ok", "retry", "rate_limited", "waiting", "dead")
# Why a signed Slack request was refused before any listener (handlers/slack_events.py).
ADMISSION_REFUSALS = ("replayed", "control_character")
UNDO_KINDS = ("rollback", "flag", "unknown")  # an undo button on an incident's changes
UNDO_OUTCOMES = ("done", "refused", "failed", "unknown", "lost")  # lost: its process gone
# PagerDuty calls looked for before they are made again (bot/incidents/pagerduty_calls.py).
FOUND_DONE_ACTIONS = ("note", "escalate")
# What became of a PagerDuty webhook delivery (handlers/pagerduty_webhooks.py).
WEBHOOK_OUTCOMES = ("applied", "duplicate", "ignored", "refused", "malformed", "error")
ECS_LOOK_OUTCOMES = ("ok", "failed", "cached")  # a look at ECS for deploys made outside opsbot
# A delivery offered to leave right after its commit (bot/outbox/express.py): leased
# (handed to a sender after the commit), unused (reserved a sender, then not sent at
# once), or left to the worker because another of its order is on its way, every
# sender is busy or its lane is being paced.
AT_ONCE_OUTCOMES = ("leased", "unused", "behind", "busy", "paced")
# What became of a request for an incident's own channel (bot/incidents/channels.py).
CHANNEL_OUTCOMES = (
    "created",
    "resumed",
    "refused",
    "already",
    "failed",
    "archived",
    "archive_failed",
    "superseded",
    # Slack's answer to creating one lost, the channel adopted next time, an invite
    # refused, an archive that met a reopen, a start without a Slack token.
    "unanswered",
    "adopted",
    "invite_failed",
    "archive_raced",
    "no_token",
)

# From a few milliseconds (a page sent straight after its commit) to minutes (an outage).
PAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
# Slack allows 3 s for an acknowledgement.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5)
CLICK_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300)
# Modals (handlers/modals.py), by their callback_id's last part, and what became of them.
MODALS = ("deploy", "flag", "dbrole", "incident_declare", "silence")
MODAL_OUTCOMES = (
    "opened",  # views.open accepted
    "expired",  # the trigger had expired: the typed usage was answered instead
    "open_failed",  # Slack refused views.open otherwise
    "done",  # the submission went through the typed command's path
    "refused",  # ... which said no: shown on a field
    "failed",  # ... which raised (part may be done), or the claim failed: logged
    "invalid",  # the view's state did not hold what the form offered
    "duplicate",  # the same view submitted again (a double click)
    "late",  # the work outlived the submission's wait: answered by message
)
# Work behind acks (bot/after_ack.py): from queued to started.
AFTER_ACK_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
# The intake's group commit (bot/alarms/batch.py).
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
# What the intake's writer was doing when it failed and went on (bot/alarms/batch.py).
INTAKE_WRITER_STEPS = ("record", "apply", "sweep", "stop")
# A notification recorded in a storm waits this long to be applied (bot/alarms/intake.py).
APPLY_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# How late the event loop runs what is due (bot/observability/loop_watch.py): every
# HTTP request, SNS notifications included, waits at least that long.
LOOP_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Interval(NamedTuple):
    """What the EMF lines count per interval (`Metrics.take_interval`)."""

    deliveries_dead: int  # deliveries marked dead, answers through a response_url aside
    responses_dead: int  # answers through a response_url marked dead
    slowest_page_s: float | None  # the slowest page accepted, if any was
    jobs_given_up: int = 0  # scheduled jobs given up after their last retry
    intake_apply_failed: int = 0  # notifications answered 200 that could not be applied
    sns_unsubscribed: int = 0  # verified UnsubscribeConfirmations on POST /sns


def _total(counter: Counter) -> int:
    """A counter's count since the start, all its labels together."""
    return int(
        sum(
            sample.value
            for metric in counter.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
    )


def family(kind: str) -> str:
    """The `target` label of a delivery kind."""
    return FAMILIES.get(kind, "other")


class Metrics:
    """Every metric one opsbot process exports, registered in `registry`."""

    def __init__(
        self, *, version: str = "unknown", commit: str = "", config_version: str = ""
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.notifications = Counter(
            "opsbot_alarm_notifications",
            "SNS notifications received, by transport and what became of them.",
            ["via", "outcome"],
            registry=registry,
        )
        for via in VIAS:
            for outcome in NOTIFICATION_OUTCOMES:
                self.notifications.labels(via, outcome)
        self.deliveries = Counter(
            "opsbot_deliveries",
            "Outbox send attempts, by delivery family and outcome.",
            ["target", "outcome"],
            registry=registry,
        )
        for target in TARGETS:
            for outcome in DELIVERY_OUTCOMES:
                self.deliveries.labels(target, outcome)
        self.undo_clicks = Counter(
            "opsbot_undo",
            "Undo buttons clicked on incidents' changes, by what they undo and what came of it.",
            ["kind", "outcome"],
            registry=registry,
        )
        for kind in UNDO_KINDS:
            for outcome in UNDO_OUTCOMES:
                self.undo_clicks.labels(kind, outcome)
        self.pagerduty_found_done = Counter(
            "opsbot_pagerduty_found_done",
            "PagerDuty calls whose answer was lost, found already done when tried again "
            "and not asked again, by action.",
            ["action"],
            registry=registry,
        )
        for action in FOUND_DONE_ACTIONS:
            self.pagerduty_found_done.labels(action)
        self.escalations_withdrawn = Counter(
            "opsbot_escalations_withdrawn",
            "opsbot's own escalations not sent to PagerDuty as they stood: withdrawn because "
            "the incident was acknowledged, resolved or silenced meanwhile, or deferred for a "
            "person's queued acknowledge or resolve, by reason; and anyone's escalation of a "
            "page a new page replaced (paged anew).",
            ["reason"],
            registry=registry,
        )
        for reason in ("acknowledged", "resolved", "silenced", "deferred", "paged anew"):
            self.escalations_withdrawn.labels(reason)
        self.pagerduty_webhooks = Counter(
            "opsbot_pagerduty_webhooks",
            "PagerDuty webhook deliveries, by what became of them.",
            ["outcome"],
            registry=registry,
        )
        for outcome in WEBHOOK_OUTCOMES:
            self.pagerduty_webhooks.labels(outcome)
        self.pagerduty_webhook_clashes = Counter(
            "opsbot_pagerduty_webhook_clashes",
            "PagerDuty events rolled back by a concurrent change (another instance's) "
            "and applied again.",
            registry=registry,
        )
        # PagerDuty's escalation level and old webhook events (bot/incidents/pagerduty_*.py).
        self.pagerduty_level_unknown = Counter(
            "opsbot_pagerduty_level_unknown",
            "Escalations whose PagerDuty level could not be worked out (no assignee on call "
            "on the incident's policy), by where: call (escalated to the level after the one "
            "opsbot last knew, and said so), webhook (shown without its level).",
            ["where"],
            registry=registry,
        )
        for where in ("call", "webhook"):
            self.pagerduty_level_unknown.labels(where)
        self.pagerduty_webhooks_too_old = Counter(
            "opsbot_pagerduty_webhooks_too_old",
            "PagerDuty webhook events older than PagerDuty retries for, recorded and not "
            "applied (a replay of a captured delivery, or a clock far off).",
            registry=registry,
        )
        self.ecs_looks = Counter(
            "opsbot_ecs_looks",
            "Looks at an app environment's ECS service for deploys made outside opsbot.",
            ["outcome"],
            registry=registry,
        )
        for outcome in ECS_LOOK_OUTCOMES:
            self.ecs_looks.labels(outcome)
        self.flag_changes = Counter(
            "opsbot_flag_changes",
            "Feature-flag changes by outcome: done (AppConfig: its deployment COMPLETE; SSM: "
            "written and restarting), refused, failed, rolled_back; and stuck: an AppConfig "
            "deployment its watch could not read for deploys.stuck_after_min (bot/flags/flows.py).",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("done", "refused", "failed", "rolled_back", "stuck"):
            self.flag_changes.labels(outcome)
        self.deploys = Counter(
            "opsbot_deploys",
            "Deploys, rollbacks and flag rolls (bot/deploys), by kind and what became of them: "
            "started, refused (or failed) before starting, then completed, failed, superseded, "
            "and stuck on the way.",
            ["kind", "outcome"],
            registry=registry,
        )
        for kind in ("deploy", "rollback", "flag_roll"):
            for outcome in ("started", "completed", "failed", "refused", "superseded", "stuck"):
                self.deploys.labels(kind, outcome)
        self.dbrole_runs = Counter(
            "opsbot_dbrole_runs",
            "Runs of an environment's database role manager (bot/dbroles), by action (check, "
            "provision) and what came of it: ok, problems (it found something to repair), "
            "refused (by the function), failed (not invoked, raised, no result, or it stopped "
            "before it checked or changed anything) or unknown (its answer was lost: it may "
            "have run).",
            ["action", "outcome"],
            registry=registry,
        )
        for action in ("check", "provision"):
            for outcome in ("ok", "problems", "refused", "failed", "unknown"):
                self.dbrole_runs.labels(action, outcome)
        self.approval_clicks = Counter(
            "opsbot_approval_clicks",
            "Clicks on requests that wait for clicks (bot/approvals), by decision (confirm, "
            "approve, cancel, other) and outcome: ok (counted), refused, or unverifiable (not "
            "counted: Slack could not confirm a right just then).",
            ["decision", "outcome"],
            registry=registry,
        )
        for decision in ("confirm", "approve", "cancel", "other"):
            for outcome in ("ok", "refused", "unverifiable"):
                self.approval_clicks.labels(decision, outcome)
        self.approvals_ended = Counter(
            "opsbot_approvals_ended",
            "Requests that waited for clicks (bot/approvals), by how they ended: done, failed "
            "(ran and failed, or refused when it came to run), cancelled, expired (without "
            "every click), interrupted (its run's process stopped; whether it ran is unknown).",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("done", "failed", "cancelled", "expired", "interrupted"):
            self.approvals_ended.labels(outcome)
        self.alarm_to_page = Histogram(
            "opsbot_alarm_to_page_seconds",
            "From an alarm's receipt (SNS or SQS) to PagerDuty accepting its trigger event.",
            buckets=PAGE_BUCKETS,
            registry=registry,
        )
        self.slack_ack = Histogram(
            "opsbot_slack_ack_seconds",
            "From a Slack request's arrival to its acknowledgement being ready.",
            buckets=ACK_BUCKETS,
            registry=registry,
        )
        self.click_to_effect = Histogram(
            "opsbot_click_to_effect_seconds",
            "From a click on an incident button to its PagerDuty call and message update done.",
            buckets=CLICK_BUCKETS,
            registry=registry,
        )
        self.outbox_at_once = Counter(
            "opsbot_outbox_at_once",
            "Deliveries offered to leave right after their commit, by what became of the offer.",
            ["outcome"],
            registry=registry,
        )
        for outcome in AT_ONCE_OUTCOMES:
            self.outbox_at_once.labels(outcome)
        self.outbox_lease_lost = Counter(
            "opsbot_outbox_lease_lost",
            "Claims of this instance whose lease ended first, by stage: before_send (not "
            "sent), in_flight (found ended or taken over while its send was queued or on "
            "the wire), after_send (sent, then found taken over: maybe sent twice), "
            "reservation_expired (its transaction outlived it), not_recorded.",
            ["stage"],
            registry=registry,
        )
        for stage in (
            "before_send",
            "in_flight",
            "after_send",
            "reservation_expired",
            "not_recorded",
        ):
            self.outbox_lease_lost.labels(stage)
        self.outbox_analyzed_total = Counter(
            "opsbot_outbox_analyzed",
            "Times the outbox worker had PostgreSQL take the statistics of its table again "
            "after a slow query for due work (a stale plan under a sudden backlog).",
            registry=registry,
        )
        self.maintenance_held = Counter(
            "opsbot_maintenance_held_pages",
            "Alarm pages held back because a maintenance window covered the alarm.",
            registry=registry,
        )
        self.home_publishes = Counter(
            "opsbot_home_publishes",
            "App Home views published (views.publish), by why and outcome.",
            ["why", "outcome"],
            registry=registry,
        )
        for why in ("opened", "refresh", "clicked"):
            for outcome in ("ok", "error", "unchanged"):
                self.home_publishes.labels(why, outcome)
        self.incident_channels = Counter(
            "opsbot_incident_channels",
            "Requests for an incident's own Slack channel, and its archives, by outcome.",
            ["outcome"],
            registry=registry,
        )
        for outcome in CHANNEL_OUTCOMES:
            self.incident_channels.labels(outcome)
        self.modals = Counter(
            "opsbot_modals",
            "Modals opened and submitted, by modal and what became of them.",
            ["modal", "outcome"],
            registry=registry,
        )
        for modal in MODALS:
            for outcome in MODAL_OUTCOMES:
                self.modals.labels(modal, outcome)
        self.folded_items = Counter(
            "opsbot_slack_folded_items",
            "Items (an incident's alarm transitions) that reached Slack folded into one "
            "thread reply with others, beyond the first of each reply: posts saved.",
            registry=registry,
        )
        self.after_ack_wait = Histogram(
            "opsbot_after_ack_wait_seconds",
            "From a command's or click's work being queued behind its ack to its start.",
            buckets=AFTER_ACK_WAIT_BUCKETS,
            registry=registry,
        )
        self.after_ack_failures = Counter(
            "opsbot_after_ack_failures_total",
            "Pieces of work behind acks that raised (their person is told; the error is logged).",
            registry=registry,
        )
        self.after_ack_queued = Gauge(
            "opsbot_after_ack_queued",
            "Pieces of work behind acks queued and not yet started.",
            registry=registry,
        )
        self.after_ack_threads = Gauge(
            "opsbot_after_ack_threads",
            "Threads of the pool behind acks: one a core, more while they wait on I/O.",
            registry=registry,
        )
        self.slack_acks_pending = Gauge(
            "opsbot_slack_acks_pending",
            "Slack requests in hand whose acknowledgement is not ready yet.",
            registry=registry,
        )
        # The journal of work owed behind acks (bot/inbound/after_ack_journal.py). `what`
        # is opsbot's own name of the work ("/deploy start"), never what a person typed.
        self.after_ack_unfinished = Counter(
            "opsbot_after_ack_unfinished_total",
            "Pieces of work behind acks left unfinished by a stopped instance, found by this "
            "one and answered (may or may not have been done), by `what`.",
            ["what"],
            registry=registry,
        )
        self.after_ack_leases_lost = Counter(
            "opsbot_after_ack_leases_lost_total",
            "Pieces of work this instance still owed that another answered as lost (its "
            "leases were not renewed in time), by `what`: not started if they had not been.",
            ["what"],
            registry=registry,
        )
        self.after_ack_given_up = Counter(
            "opsbot_after_ack_given_up_total",
            "Pieces of work behind acks answered before their end, by `reason`: lease (not "
            "started, its lease may have lapsed), late (not started before its response_url's "
            "last minutes), overdue (still running then: may or may not get done).",
            ["reason"],
            registry=registry,
        )
        for reason in ("lease", "late", "overdue"):
            self.after_ack_given_up.labels(reason)
        self.after_ack_journal_failures = Counter(
            "opsbot_after_ack_journal_failures_total",
            "Failures of the journal of work behind acks, by `step` (flush, renew, sweep): "
            "each is logged and tried again.",
            ["step"],
            registry=registry,
        )
        for step in ("flush", "renew", "sweep"):
            self.after_ack_journal_failures.labels(step)
        self.after_ack_oldest_running = Gauge(
            "opsbot_after_ack_oldest_running_seconds",
            "How long the longest-running piece of work behind acks has run (0: none runs).",
            registry=registry,
        )
        self.intake_batch_size = Histogram(
            "opsbot_intake_batch_size",
            "Notifications recorded together in one transaction (the intake's group commit).",
            ["via"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.intake_commit = Histogram(
            "opsbot_intake_commit_seconds",
            "One intake batch: from its first statement to its commit done.",
            ["via"],
            buckets=COMMIT_BUCKETS,
            registry=registry,
        )
        self.intake_backlog = Gauge(
            "opsbot_intake_backlog",
            "Notifications recorded in a storm and not applied yet by this process.",
            registry=registry,
        )
        self.intake_apply_lag = Histogram(
            "opsbot_intake_apply_lag_seconds",
            "A notification recorded for later: from its commit to its alarm's incident changed.",
            buckets=APPLY_LAG_BUCKETS,
            registry=registry,
        )
        self.db_pool_invalidations = Counter(
            "opsbot_db_pool_invalidations",
            "A pooled database connection found dead at checkout (`reason`: the server "
            "ended it, or it did not answer a ping): it and every older one were replaced.",
            ["pool", "reason"],
            registry=registry,
        )
        self.intake_writer_errors = Counter(
            "opsbot_intake_writer_errors",
            "Failures the intake's writer outlived, by what it was doing (`step`); each is "
            "logged with the ids it had in hand, whose senders were answered 5xx.",
            ["step"],
            registry=registry,
        )
        for step in INTAKE_WRITER_STEPS:
            self.intake_writer_errors.labels(step)
        self.intake_apply_failed = Counter(
            "opsbot_intake_apply_failed",
            "Notifications recorded for later that could not be applied (logged with their ids).",
            registry=registry,
        )
        self.alarm_queue_errors = Counter(
            "opsbot_alarm_queue_errors",
            "Alarm queue (SQS) calls that failed: polls (`receive`, tried again after 5 s) "
            "and messages not deleted (`delete`, redelivered; logged with their ids).",
            ["call"],
            registry=registry,
        )
        for call in ("receive", "delete"):
            self.alarm_queue_errors.labels(call)
        self.alarm_odd_fields = Counter(
            "opsbot_alarm_odd_fields",
            "Alarm fields parsing corrected (`future_time`: StateChangeTime after receipt, "
            "taken as received; `name_cut`) or refused, the message then a notice "
            "(`account_mismatch`, `account_invalid`, `region_invalid`, `account_not_topics`: "
            "an alarm of an account its topic may not carry); each a WARNING line.",
            ["what"],
            registry=registry,
        )
        self.sns_unsubscribed = Counter(
            "opsbot_sns_unsubscribed",
            "Verified UnsubscribeConfirmations on POST /sns: that topic's alarms no longer "
            "arrive over HTTPS (each an ERROR line with the topic's ARN).",
            registry=registry,
        )
        self.slack_auth_ok = Gauge(
            "opsbot_slack_auth_ok",
            "1 while Slack accepts the bot's token, 0 once it refused it (until a call succeeds).",
            registry=registry,
        )
        self.slack_socket_connected = Gauge(
            "opsbot_slack_socket_connected",
            "Socket Mode (SLACK_APP_TOKEN): 1 while the websocket to Slack is open, else 0.",
            registry=registry,
        )
        self.slack_socket_reconnects = Counter(
            "opsbot_slack_socket_reconnects",
            "Socket Mode: websocket connections opened again after one was lost.",
            registry=registry,
        )
        self.slack_socket_connect_failures = Counter(
            "opsbot_slack_socket_connect_failures",
            "Socket Mode: attempts to open the websocket that failed (each waits longer).",
            registry=registry,
        )
        self.slack_unhandled = Counter(
            "opsbot_slack_unhandled",
            "Slack buttons and slash commands no listener of this version takes "
            "(answered 404): the Slack app's configuration and opsbot disagree.",
            ["kind"],
            registry=registry,
        )
        self.slack_loop_stalls = Counter(
            "opsbot_slack_loop_stalls",
            "Slack buttons and slash commands whose dispatch held the event loop longer "
            "than OPSBOT_LOOP_STALL_WARN_S: a listener waited where none may.",
            ["kind"],
            registry=registry,
        )
        self.event_loop_lag = Histogram(
            "opsbot_event_loop_lag_seconds",
            "How late the event loop ran a timer due on it, looked at every 0.1 s.",
            buckets=LOOP_LAG_BUCKETS,
            registry=registry,
        )
        self.slack_socket_refused = Counter(
            "opsbot_slack_socket_refused",
            "Socket Mode: messages refused before Bolt saw them (not JSON, too deep, bad shape).",
            registry=registry,
        )
        self.slack_admission_refused = Counter(
            "opsbot_slack_admission_refused",
            "Signed Slack requests refused before any listener, by reason: replayed (a "
            "signature seen within five minutes), control_character (a slash command's text).",
            ["reason"],
            registry=registry,
        )
        for reason in ADMISSION_REFUSALS:
            self.slack_admission_refused.labels(reason)
        self.leader = Gauge(
            "opsbot_leader",
            "1 on the instance that runs scheduled jobs (holds the scheduler's lock).",
            registry=registry,
        )
        # Labelled by bot/scheduler: `job` a registered job name, `outcome` one of its
        # FAILURE_OUTCOMES (each combination created when the scheduler starts).
        self.scheduled_job_failures = Counter(
            "opsbot_scheduled_job_failures",
            "Scheduled job runs that raised, by job and what became of them: retried "
            "later, superseded by a newer schedule, or given up until the next start.",
            ["job", "outcome"],
            registry=registry,
        )
        self.clock_offset = Gauge(
            "opsbot_clock_offset_seconds",
            "How far this instance's clock is ahead of PostgreSQL's (negative: behind), read "
            "with each heartbeat; instances apart by half a delivery lease may send twice.",
            registry=registry,
        )
        self.scheduled_jobs_overdue = Gauge(
            "opsbot_scheduled_jobs_overdue_seconds",
            "How long the earliest stored scheduled job has been due (0: none is due); "
            "read by every instance's ops monitor.",
            registry=registry,
        )
        self.scheduler_pass_failures = Counter(
            "opsbot_scheduler_pass_failures",
            "The leader's passes over the job store that failed (tried again within 5 s), "
            "and restarts of its scheduler loop found stopped.",
            registry=registry,
        )
        self.build_info = Gauge(
            "opsbot_build_info",
            "Always 1: the running version and the commit the image was built from.",
            ["version", "commit"],
            registry=registry,
        )
        self.build_info.labels(version, commit or "unknown").set(1)
        self.config_info = Gauge(
            "opsbot_config_info",
            "Always 1: the configuration's version (OPSBOT_CONFIG_VERSION, else its sha256).",
            ["version"],
            registry=registry,
        )
        self.config_info.labels(config_version or "unknown").set(1)
        self.version = version
        self.commit = commit or "unknown"
        self.config_version = config_version or "unknown"
        # Read by the EMF lines: what happened since the last line.
        self._lock = threading.Lock()
        self._dead_since_emit = 0
        self._responses_dead_since_emit = 0
        self._page_max_since_emit: float | None = None
        self._jobs_given_up_at_emit = 0
        self._apply_failed_at_emit = 0
        self._unsubscribed_at_emit = 0
        self._slack_auth = 0.0
        self._slack_socket: float | None = None  # None: HTTP mode, no socket to watch

    # -- what the hot paths call ----------------------------------------------------------

    def undo(self, kind: str, outcome: str) -> None:
        self.undo_clicks.labels(kind if kind in UNDO_KINDS else "unknown", outcome).inc()

    def deploy(self, kind: str, outcome: str) -> None:
        self.deploys.labels(kind, outcome).inc()

    def ecs_look(self, outcome: str) -> None:
        self.ecs_looks.labels(outcome).inc()

    def incident_channel(self, outcome: str) -> None:
        self.incident_channels.labels(outcome).inc()

    def delivery(self, kind: str, outcome: str, *, pages: bool = True) -> None:
        """Count a send's outcome; `pages`: a death counts towards the deliveries-dead alarm
        (not a person's PagerDuty call, which was told to that person)."""
        target = family(kind)
        self.deliveries.labels(target, outcome).inc()
        if outcome == "dead" and pages:
            with self._lock:
                if target == RESPONSES:
                    self._responses_dead_since_emit += 1
                else:
                    self._dead_since_emit += 1

    def intake_writer_error(self, step: str) -> None:
        self.intake_writer_errors.labels(step).inc()

    def modal(self, callback_id: str, outcome: str) -> None:
        """Count a modal's outcome; `callback_id` is `opsbot.<modal>`."""
        name = callback_id.removeprefix("opsbot.")
        self.modals.labels(name if name in MODALS else "other", outcome).inc()

    def folded(self, items: int) -> None:
        self.folded_items.inc(items)

    def at_once(self, outcome: str) -> None:
        self.outbox_at_once.labels(outcome).inc()

    def outbox_analyzed(self) -> None:
        self.outbox_analyzed_total.inc()

    def db_pool_invalidated(self, pool: str, reason: str) -> None:
        self.db_pool_invalidations.labels(pool=pool, reason=reason).inc()

    def page_accepted(self, seconds: float) -> None:
        self.alarm_to_page.observe(seconds)
        with self._lock:
            if self._page_max_since_emit is None or seconds > self._page_max_since_emit:
                self._page_max_since_emit = seconds

    def slack_auth(self, ok: bool) -> None:
        """Slack accepted (True) or refused (False) the bot's token."""
        value = 1.0 if ok else 0.0
        self._slack_auth = value
        self.slack_auth_ok.set(value)

    def slack_socket(self, connected: bool) -> None:
        """Socket Mode's websocket to Slack is open (True) or not (False)."""
        value = 1.0 if connected else 0.0
        self._slack_socket = value
        self.slack_socket_connected.set(value)

    def follow_leadership(self, is_leader: Callable[[], bool]) -> None:
        self.leader.set_function(lambda: 1.0 if is_leader() else 0.0)

    # -- what the EMF lines read ----------------------------------------------------------

    def take_interval(self) -> Interval:
        """What happened since the last call; it all starts over."""
        with self._lock:
            given_up = self._jobs_given_up()
            apply_failed = _total(self.intake_apply_failed)
            unsubscribed = _total(self.sns_unsubscribed)
            interval = Interval(
                deliveries_dead=self._dead_since_emit,
                responses_dead=self._responses_dead_since_emit,
                slowest_page_s=self._page_max_since_emit,
                jobs_given_up=given_up - self._jobs_given_up_at_emit,
                intake_apply_failed=apply_failed - self._apply_failed_at_emit,
                sns_unsubscribed=unsubscribed - self._unsubscribed_at_emit,
            )
            self._dead_since_emit = self._responses_dead_since_emit = 0
            self._page_max_since_emit = None
            self._jobs_given_up_at_emit = given_up
            self._apply_failed_at_emit = apply_failed
            self._unsubscribed_at_emit = unsubscribed
        return interval

    def _jobs_given_up(self) -> int:
        """Scheduled job runs given up since the start, all jobs together."""
        return int(
            sum(
                sample.value
                for metric in self.scheduled_job_failures.collect()
                for sample in metric.samples
                if sample.name.endswith("_total") and sample.labels["outcome"] == GAVE_UP
            )
        )

    @property
    def slack_auth_value(self) -> float:
        return self._slack_auth

    @property
    def slack_socket_value(self) -> float | None:
        """1 or 0 in Socket Mode, None in HTTP mode."""
        return self._slack_socket
