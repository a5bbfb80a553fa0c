"""`python -m bench --quick` runs end to end and reports what it should.

A smoke test of the harness, not a benchmark: the machine may be busy, so no
time is asserted. What is asserted is the shape of the table and of the JSON,
the storm's exactly-once counts, and what the edge did with each attack.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


# One run for every check (a second would double minutes of load on a busy machine).
@pytest.mark.timeout(500)
def test_quick_run_reports_what_each_benchmark_did(tmp_path: Path) -> None:
    out = tmp_path
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--alertmanager", "skip", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads((out / "all-quick.json").read_text())
    check_table_and_exactly_once(result.stdout, data, out)
    check_edge(result.stdout, data)


def check_table_and_exactly_once(table: str, data: dict[str, Any], out: Path) -> None:
    headings = (
        "1. Acknowledgement latency",
        "2. Alarm storm",
        "3. Footprint",
        "4. The HTTP edge",
        "5. A click's effect",
    )
    for heading in (*headings, "Targets"):
        assert heading in table
    for row in ("opsbot / bare", "time to first page (s)", "idle RSS (MB)", "peak RSS (MB)"):
        assert row in table
    assert "Alertmanager: skipped on request" in table

    assert {"cpu_model", "cores", "memory_mib", "python"} <= data["machine"].keys()
    assert "slash /opsbot help" in data["ack"]["kinds_measured"]
    assert data["ack"]["summary"]["opsbot"]["errors"] == 0
    assert data["ack"]["summary"]["bare"]["errors"] == 0
    # Every click was answered behind its ack (on an incident the fresh database
    # does not have), and so was every /opsbot help (the caller's rights may need Slack).
    opsbot_run = data["ack"]["rounds"][0]["opsbot"]
    clicks = sum(n for kind, n in opsbot_run["sent"].items() if kind.startswith("button"))
    helps = opsbot_run["sent"]["slash /opsbot help"]
    assert clicks > 0 and helps > 0
    assert opsbot_run["work_behind"]["answers"] == clicks + helps
    assert data["ack"]["rounds"][0]["bare"]["work_behind"]["answers"] == 0

    storm = data["storm"]["runs"][0]["opsbot"]
    assert storm["drained"]
    # The subscription was confirmed first, as SNS does: its certificate verified the storm.
    assert storm["certificate_fetches_in_storm"] == 0
    assert storm["intake"]["statuses"] == {"200": data["storm"]["settings"]["notifications"]}
    assert storm["checks"]["one_pagerduty_incident_per_incident"]
    assert storm["checks"]["pagerduty_incidents_not_from_an_incident"] == 0
    assert storm["checks"]["no_slack_message_posted_twice"]
    assert storm["checks"]["slack_messages_posted_twice"] == 0
    # One PagerDuty incident for each of opsbot's incidents, and every alarm has one.
    # How many incidents an alarm has is not fixed: the quick storm's reopen window
    # is one second, and on a busy machine an alarm's OK and its next ALARM can
    # arrive further apart than that, which rightly opens a second incident.
    assert storm["pagerduty_incidents_per_alarm"] == storm["incidents_per_alarm"]
    assert storm["pagerduty_incidents_per_alarm"]["min"] >= 1

    verdicts = {t["target"]: t["met"] for t in data["targets"]}
    # ack 1, storm 5 (quiet Slack and the intake among them), edge 2; footprint 3 (idle RSS, time to
    # ready, the storm's peak); click 4
    assert len(verdicts) == 15
    assert sum("click" in target for target in verdicts) == 4
    assert verdicts["time to first page no worse than Alertmanager's"] is None  # skipped
    assert (out / "all-quick.png").exists() or "no chart" in table


def check_edge(table: str, data: dict[str, Any]) -> None:
    for row in ("uploads to /sns", "uploads to /slack/events", "uploads to /pagerduty/webhooks"):
        assert row in table
    assert "time to page under siege (s)" in table
    edge = data["edge"]
    settings = edge["settings"]
    for path, uploads in edge["uploads"].items():
        # Every upload refused at the cap, its connection closed; memory sampled throughout.
        assert uploads["statuses"] == {"413": settings["parallel"]}, path
        assert uploads["closed"] == settings["parallel"], path
        assert uploads["peak_rss_mb"] is not None and uploads["samples"] > 0
    assert all(s is not None for s in edge["page_alone_s"])
    for siege in edge["page_besieged"]:
        assert siege["page_s"] is not None  # the genuine alarm paged (however late)
        assert siege["half_sent_answers"] == {"408": settings["half_sent"]}
        assert siege["half_sent_closed_by_server"] == settings["half_sent"]
        # Their certificate never comes: each is answered, and none is recorded.
        statuses = siege["request_statuses"]
        assert sum(statuses.values()) == settings["slow_certs"]
        assert all(code.isdigit() and code != "200" for code in statuses), statuses
    assert edge["summary"]["peak_over_idle_mb"] is not None
    edge_targets = [t for t in data["targets"] if "uploads to each route" in t["target"]]
    assert len(edge_targets) == 1 and edge_targets[0]["met"] is not None
