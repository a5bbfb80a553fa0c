"""The CloudWatch EMF lines, checked against the specification's required structure."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.observability.emf import emf_lines
from bot.observability.outbox_gauges import FamilyBacklog, OutboxBacklog

# CloudWatch units (MetricDatum), as the specification lists them.
UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second",
    "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
}  # fmt: skip


def check_against_the_specification(line: str) -> dict[str, Any]:
    """The members the EMF specification requires, with their types and limits."""
    document = json.loads(line)
    assert isinstance(document, dict)
    meta = document["_aws"]
    assert isinstance(meta["Timestamp"], int) and not isinstance(meta["Timestamp"], bool)
    directives = meta["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    for directive in directives:
        assert set(directive) >= {"Namespace", "Dimensions", "Metrics"}
        assert isinstance(directive["Namespace"], str) and 1 <= len(directive["Namespace"]) <= 1024
        assert isinstance(directive["Dimensions"], list) and len(directive["Dimensions"]) >= 1
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list) and len(dimension_set) <= 30
            for key in dimension_set:
                assert isinstance(document[key], str) and len(document[key]) <= 1024
        assert 1 <= len(directive["Metrics"]) <= 100
        for definition in directive["Metrics"]:
            assert isinstance(definition["Name"], str) and definition["Name"]
            assert definition.get("Unit", "None") in UNITS
            target = document[definition["Name"]]
            assert isinstance(target, int | float) and not isinstance(target, bool)
    return document


def test_the_lines_follow_the_specification_and_the_alarms_contract() -> None:
    now = datetime(2026, 12, 1, 10, 0, 30, tzinfo=UTC)
    backlog = OutboxBacklog(
        families={
            "pagerduty": FamilyBacklog(3, datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)),
            "slack": FamilyBacklog(1, None),
        }
    )
    lines = emf_lines(
        namespace="opsbot",
        now=now,
        slack_auth_ok=0.0,
        deliveries_dead=2,
        slowest_page_s=0.25,
        backlog=backlog,
        instance="ip-10-0-0-1:1-abc",
        jobs_given_up=1,
        jobs_overdue_s=12.5,
        intake_apply_failed=2,
        sns_unsubscribed=1,
    )
    documents = [check_against_the_specification(line) for line in lines]
    assert all("\n" not in line for line in lines)

    plain, *per_target = documents
    [directive] = plain["_aws"]["CloudWatchMetrics"]
    assert plain["_aws"]["Timestamp"] == int(now.timestamp() * 1000)
    assert directive["Namespace"] == "opsbot" and directive["Dimensions"] == [[]]
    assert {m["Name"] for m in directive["Metrics"]} == {
        "opsbot_heartbeat",
        "opsbot_slack_auth_ok",
        "opsbot_deliveries_dead",
        "opsbot_slack_responses_dead",
        "opsbot_monitor_db_failures",
        "opsbot_scheduled_jobs_given_up",
        "opsbot_scheduled_jobs_overdue_seconds",
        "opsbot_alarm_to_page_seconds",
        "opsbot_intake_apply_failed",
        "opsbot_sns_unsubscribed",
    }
    assert plain["opsbot_scheduled_jobs_given_up"] == 1
    assert plain["opsbot_intake_apply_failed"] == 2 and plain["opsbot_sns_unsubscribed"] == 1
    assert plain["opsbot_scheduled_jobs_overdue_seconds"] == 12.5
    assert plain["opsbot_heartbeat"] == 1 and plain["opsbot_slack_auth_ok"] == 0
    assert plain["opsbot_deliveries_dead"] == 2 and plain["opsbot_alarm_to_page_seconds"] == 0.25
    assert plain["opsbot_slack_responses_dead"] == 0 and plain["opsbot_monitor_db_failures"] == 0

    by_target = {d["target"]: d for d in per_target}
    assert {"pagerduty", "slack"} <= set(by_target)
    for document in per_target:
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert directive["Dimensions"] == [["target"]]
        assert {m["Name"] for m in directive["Metrics"]} == {
            "opsbot_outbox_pending",
            "opsbot_outbox_oldest_pending_seconds",
        }
    assert by_target["pagerduty"]["opsbot_outbox_pending"] == 3
    assert by_target["pagerduty"]["opsbot_outbox_oldest_pending_seconds"] == 30
    assert by_target["slack"]["opsbot_outbox_oldest_pending_seconds"] == 0


def test_an_interval_without_a_page_has_no_page_time() -> None:
    [plain, *_] = emf_lines(
        namespace="opsbot",
        now=datetime(2026, 12, 1, tzinfo=UTC),
        slack_auth_ok=1.0,
        deliveries_dead=0,
        slowest_page_s=None,
        backlog=OutboxBacklog(),
        instance="i",
    )
    document = check_against_the_specification(plain)
    assert "opsbot_alarm_to_page_seconds" not in document
    assert "opsbot_scheduled_jobs_overdue_seconds" not in document  # not read: no figure
    assert "opsbot_slack_socket_connected" not in document  # HTTP mode: no socket to watch
    assert document["opsbot_deliveries_dead"] == 0


def test_an_interval_whose_heartbeat_write_failed_has_no_heartbeat_and_counts_the_failures() -> (
    None
):
    [plain, *per_target] = emf_lines(
        namespace="opsbot",
        now=datetime(2026, 12, 1, tzinfo=UTC),
        slack_auth_ok=1.0,
        deliveries_dead=1,
        slowest_page_s=None,
        backlog=OutboxBacklog(),
        instance="i",
        heartbeat=False,
        responses_dead=3,
        monitor_db_failures=2,
    )
    document = check_against_the_specification(plain)
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert "opsbot_heartbeat" not in document
    assert "opsbot_heartbeat" not in {m["Name"] for m in directive["Metrics"]}
    assert document["opsbot_monitor_db_failures"] == 2
    assert document["opsbot_deliveries_dead"] == 1 and document["opsbot_slack_responses_dead"] == 3
    assert len(per_target) == 4
