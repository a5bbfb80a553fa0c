"""CloudWatch Embedded Metric Format lines: the numbers the alarms on opsbot itself watch.

Every interval one JSON line per dimension set is written to stdout, which
the container's log driver sends to CloudWatch Logs, where each line becomes
metric data (no agent needed). The contract the Terraform alarms are written
against, in namespace `OPSBOT_EMF_NAMESPACE`:

- no dimensions: `opsbot_heartbeat` (1; left out while the instance cannot write
  its heartbeat to the database), `opsbot_slack_auth_ok` (1 or 0),
  `opsbot_deliveries_dead` (deliveries marked dead during the interval, answers
  through a response_url aside), `opsbot_slack_responses_dead` (those answers:
  not paged), `opsbot_monitor_db_failures` (the ops monitor's database steps
  that failed during the interval), `opsbot_scheduled_jobs_given_up` (scheduled
  jobs given up after their last retry during the interval),
  `opsbot_scheduled_jobs_overdue_seconds` (how long the earliest stored job has
  been due; left out when it could not be read), `opsbot_intake_apply_failed`
  (notifications answered 200 to SNS that could not be applied during the interval:
  SNS sends none of them again), `opsbot_sns_unsubscribed` (verified
  UnsubscribeConfirmations during the interval: that topic's alarms no longer arrive
  over HTTPS), in Socket Mode
  `opsbot_slack_socket_connected` (1 while the websocket to Slack is open when the
  line is written, else 0; left out in HTTP mode) and, in an interval with a page,
  `opsbot_alarm_to_page_seconds` (the slowest);
- dimension `target` (`pagerduty`, `slack`, `slack_response`, `pagerduty_rest`):
  `opsbot_outbox_pending` and `opsbot_outbox_oldest_pending_seconds`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.observability.metrics import TARGETS
from bot.observability.outbox_gauges import OutboxBacklog


def _line(
    namespace: str,
    timestamp_ms: int,
    dimensions: list[str],
    metrics: list[tuple[str, str, float]],
    members: dict[str, Any],
) -> str:
    document: dict[str, Any] = {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [dimensions],
                    "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in metrics],
                }
            ],
        },
        **members,
    }
    for name, _unit, value in metrics:
        document[name] = value
    return json.dumps(document, separators=(",", ":"))


def emf_lines(
    *,
    namespace: str,
    now: datetime,
    slack_auth_ok: float,
    deliveries_dead: int,
    slowest_page_s: float | None,
    backlog: OutboxBacklog,
    instance: str,
    heartbeat: bool = True,
    responses_dead: int = 0,
    monitor_db_failures: int = 0,
    jobs_given_up: int = 0,
    jobs_overdue_s: float | None = None,
    slack_socket_connected: float | None = None,
    intake_apply_failed: int = 0,
    sns_unsubscribed: int = 0,
) -> list[str]:
    """The lines of one interval, ending at `now`; without `heartbeat` (its database
    write failed), no `opsbot_heartbeat`."""
    timestamp_ms = int(now.timestamp() * 1000)
    members = {"instance": instance}
    plain: list[tuple[str, str, float]] = [("opsbot_heartbeat", "Count", 1)] if heartbeat else []
    plain += [
        ("opsbot_slack_auth_ok", "None", slack_auth_ok),
        ("opsbot_deliveries_dead", "Count", deliveries_dead),
        ("opsbot_slack_responses_dead", "Count", responses_dead),
        ("opsbot_monitor_db_failures", "Count", monitor_db_failures),
        ("opsbot_scheduled_jobs_given_up", "Count", jobs_given_up),
        ("opsbot_intake_apply_failed", "Count", intake_apply_failed),
        ("opsbot_sns_unsubscribed", "Count", sns_unsubscribed),
    ]
    if jobs_overdue_s is not None:
        plain.append(("opsbot_scheduled_jobs_overdue_seconds", "Seconds", round(jobs_overdue_s, 3)))
    if slack_socket_connected is not None:
        plain.append(("opsbot_slack_socket_connected", "None", slack_socket_connected))
    if slowest_page_s is not None:
        plain.append(("opsbot_alarm_to_page_seconds", "Seconds", round(slowest_page_s, 3)))
    lines = [_line(namespace, timestamp_ms, [], plain, members)]
    for target in TARGETS:
        lines.append(
            _line(
                namespace,
                timestamp_ms,
                ["target"],
                [
                    ("opsbot_outbox_pending", "Count", backlog.pending(target)),
                    (
                        "opsbot_outbox_oldest_pending_seconds",
                        "Seconds",
                        round(backlog.oldest_s(target, now), 3),
                    ),
                ],
                {**members, "target": target},
            )
        )
    return lines
