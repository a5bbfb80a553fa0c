"""The table, the targets, the JSON and the chart of one run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench import click as click_bench
from bench import edge as edge_bench
from bench import storm as storm_bench
from bench.ack import ALL
from bench.machine import one_line
from bench.stats import spread

ACK_RATIO_TARGET = 1.25
INTAKE_TARGET_PER_S = 1000.0  # issue 19.4, on SQLite and on PostgreSQL
INTAKE_P99_TARGET_MS = 250.0
STORM_QUIET_TARGET_S = 120.0  # issue 19: Slack quiet again this soon after the storm starts
PEAK_RSS_TARGET_MB = 200.0


# -- numbers ------------------------------------------------------------------------------


def fmt(value: dict[str, Any] | float | None, digits: int = 1, unit: str = "") -> str:
    """'12.3' for one run, '12.3 [11.0-14.1]' (median [min-max]) for several."""
    if value is None:
        return "—"
    if isinstance(value, dict):
        if value.get("median") is None:
            return "—"
        text = f"{value['median']:.{digits}f}{unit}"
        if value.get("runs", 1) > 1:
            text += f" [{value['min']:.{digits}f}-{value['max']:.{digits}f}]"
        return text
    if isinstance(value, float) and math.isnan(value):
        return "—"
    return f"{value:.{digits}f}{unit}"


def _storm_spread(runs: list[dict[str, Any]], system: str, *path: str) -> dict[str, Any]:
    values = []
    for run in runs:
        item: Any = run.get(system)
        for key in path:
            item = None if item is None else item.get(key)
        values.append(item)
    return spread(values)


def footprint_summary(results: dict[str, Any]) -> dict[str, Any]:
    starts = results.get("starts", [])

    def pick(process: str, database: str | None = None) -> list[dict[str, Any]]:
        return [
            s
            for s in starts
            if s["process"] == process and (database is None or s["database"] == database)
        ]

    storm_runs = (results.get("storm") or {}).get("runs", [])
    pages = (results.get("footprint") or {}).get("pages", [])

    def page_s(database: str) -> dict[str, Any]:
        return spread(p["page_s"] for p in pages if p["database"] == database)

    return {
        "opsbot_first_page_s_fresh_database": page_s("fresh"),
        "opsbot_first_page_s_migrated_database": page_s("migrated"),
        "opsbot_ready_s_fresh_database": spread(s["ready_s"] for s in pick("opsbot", "fresh")),
        "opsbot_ready_s_migrated_database": spread(
            s["ready_s"] for s in pick("opsbot", "migrated")
        ),
        "opsbot_idle_rss_mb": spread(s["idle_rss_mb"] for s in pick("opsbot")),
        "opsbot_rss_after_storm_mb": _storm_spread(storm_runs, "opsbot", "rss_after_storm_mb"),
        "alertmanager_ready_s": spread(s["ready_s"] for s in pick("alertmanager")),
        "alertmanager_idle_rss_mb": spread(s["idle_rss_mb"] for s in pick("alertmanager")),
        "alertmanager_rss_after_storm_mb": _storm_spread(
            storm_runs, "alertmanager", "rss_after_storm_mb"
        ),
        "bare_ready_s": spread(s["ready_s"] for s in pick("bare-bolt")),
        "bare_idle_rss_mb": spread(s["idle_rss_mb"] for s in pick("bare-bolt")),
        "plain_ready_s": spread(s["ready_s"] for s in pick("plain-bolt")),
        "plain_idle_rss_mb": spread(s["idle_rss_mb"] for s in pick("plain-bolt")),
        "starts_counted": len(starts),
    }


def storm_summary(storm: dict[str, Any]) -> dict[str, Any]:
    runs = storm.get("runs", [])
    summary: dict[str, Any] = {}
    for system in ("opsbot", "alertmanager"):
        if not any(system in run for run in runs):
            continue
        mine = [run[system] for run in runs if system in run]
        summary[system] = {
            "intake_rate_per_s": _storm_spread(runs, system, "intake", "intake_rate_per_s"),
            "request_p50_ms": _storm_spread(runs, system, "intake", "request_p50_ms"),
            "request_p99_ms": _storm_spread(runs, system, "intake", "request_p99_ms"),
            "first_page_s": _storm_spread(runs, system, "first_page_s"),
            "last_trigger_s": _storm_spread(runs, system, "last_trigger_s"),
            "last_pagerduty_event_s": _storm_spread(runs, system, "last_pagerduty_event_s"),
            "last_slack_update_s": _storm_spread(runs, system, "last_slack_update_s"),
            "drained_s": _storm_spread(runs, system, "drained_s"),
            "pagerduty_events": _storm_spread(runs, system, "pagerduty_events"),
            "peak_rss_mb": _storm_spread(runs, system, "peak_rss_mb"),
            "cpu_s": _storm_spread(runs, system, "cpu_s"),
            "pagerduty_incidents_per_alarm_min": min(
                r["pagerduty_incidents_per_alarm"]["min"] for r in mine
            ),
            "pagerduty_incidents_per_alarm_max": max(
                r["pagerduty_incidents_per_alarm"]["max"] for r in mine
            ),
            "slack_messages_per_alarm_min": min(r["slack_messages_per_alarm"]["min"] for r in mine),
            "slack_messages_per_alarm_max": max(r["slack_messages_per_alarm"]["max"] for r in mine),
            "slack_messages_per_alarm_mean": spread(
                r["slack_messages_per_alarm"]["mean"] for r in mine
            ),
            "alarms_in_wrong_state": [r["checks"]["alarms_in_wrong_state"] for r in mine],
            "not_2xx": [storm_bench.not_2xx(r["intake"]["statuses"]) for r in mine],
            "runs": len(mine),
        }
        if system == "opsbot":
            summary[system]["exactly_one_pagerduty_incident"] = [
                r["checks"]["one_pagerduty_incident_per_incident"] for r in mine
            ]
            summary[system]["slack_messages_posted_twice"] = [
                r["checks"]["slack_messages_posted_twice"] for r in mine
            ]
            summary[system]["slack_429s"] = [r.get("slack_429s", 0) for r in mine]
            summary[system]["slack_posts"] = [
                (r.get("slack_top_level_posts"), r.get("slack_thread_posts")) for r in mine
            ]
    return summary


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target: met (True/False) or not evaluated (None), with the figure behind it."""
    found: list[dict[str, Any]] = []
    ack = results.get("ack")
    if ack is not None:
        ratio = ack["summary"]["ratio_opsbot_over_bare"]["p99_ms"]
        # A refusal or a reset is answered fast: latencies with errors in them say nothing.
        errors = ack["summary"]["opsbot"]["errors"]
        found.append(
            {
                "target": f"ack p99 within {ACK_RATIO_TARGET}x of the bare Bolt app, "
                "every request answered 200",
                "met": errors == 0
                and ratio["median"] is not None
                and ratio["median"] <= ACK_RATIO_TARGET,
                "figure": f"{fmt(ratio, 2, 'x')} (median over runs [min-max]); "
                f"opsbot errors (not 200, or no answer): {errors}",
            }
        )
    storm = results.get("storm")
    if storm is not None:
        summary = storm["summary"]["opsbot"]
        intake_only = bool(storm["settings"].get("intake_only"))
        drained: list[dict[str, Any]] = []
        once = all(summary["exactly_one_pagerduty_incident"])
        twice = sum(summary["slack_messages_posted_twice"])
        drained.append(
            {
                "target": "exactly one PagerDuty incident per alarm incident, "
                "no Slack message posted twice",
                "met": once and twice == 0,
                "figure": (
                    f"PagerDuty incidents per alarm incident: "
                    f"{'1 in every run' if once else 'NOT 1 in some run'}; "
                    f"Slack messages posted twice: {twice}"
                ),
            }
        )
        quiet = summary["last_slack_update_s"]
        refused = sum(summary["slack_429s"])
        wrong = sum(summary["alarms_in_wrong_state"])
        drained.append(
            {
                "target": f"Slack quiet again within {STORM_QUIET_TARGET_S:.0f} s of the storm's "
                "start, zero 429s, no alarm left in a wrong state",
                "met": quiet["max"] is not None
                and quiet["max"] <= STORM_QUIET_TARGET_S
                and refused == 0
                and wrong == 0,
                "figure": f"last Slack call {fmt(quiet, 1)} s; 429s: {refused}; "
                f"alarms in a wrong state: {wrong}",
            }
        )
        found += _drain_dependent(drained, intake_only)
        rate, p99 = summary["intake_rate_per_s"], summary["request_p99_ms"]
        refused = sum(summary["not_2xx"])
        found.append(
            {
                "target": f"intake at least {INTAKE_TARGET_PER_S:,.0f} notifications/s answered "
                f"2xx with answers p99 within {INTAKE_P99_TARGET_MS:.0f} ms, none answered "
                f"otherwise ({str(results.get('database', '?')).split(' ')[0]})",
                "met": refused == 0
                and rate["min"] is not None
                and p99["max"] is not None
                and rate["min"] >= INTAKE_TARGET_PER_S
                and p99["max"] <= INTAKE_P99_TARGET_MS,
                "figure": f"{fmt(rate, 0)} notifications/s, answers p99 {fmt(p99, 0)} ms; "
                f"not answered 2xx after resends: {refused}",
            }
        )
        am = storm["summary"].get("alertmanager")
        mine = summary["first_page_s"]
        if am is None:
            reason = storm["alertmanager"].get("skipped") or "Alertmanager did not run"
            found.append(
                {
                    "target": "time to first page no worse than Alertmanager's",
                    "met": None,
                    "figure": f"opsbot {fmt(mine, 3)} s; not compared: {reason}",
                }
            )
        else:
            theirs = am["first_page_s"]
            met = (
                mine["median"] is not None
                and theirs["median"] is not None
                and mine["median"] <= theirs["median"]
            )
            found.append(
                {
                    "target": "time to first page no worse than Alertmanager's",
                    "met": met,
                    "figure": f"opsbot {fmt(mine, 3)} s, Alertmanager {fmt(theirs, 3)} s",
                }
            )
        peaks = [r["opsbot"]["peak_rss_mb"] for r in storm["runs"] if r["opsbot"]["peak_rss_mb"]]
        if ack is not None and ack.get("opsbot_peak_rss_mb"):
            peaks.append(ack["opsbot_peak_rss_mb"])
        if peaks:
            peak = {
                "target": f"peak RSS under {PEAK_RSS_TARGET_MB:.0f} MB",
                "met": max(peaks) < PEAK_RSS_TARGET_MB,
                "figure": f"highest opsbot peak (VmHWM) {max(peaks):.1f} MB",
            }
            # A peak only grows: one over the target already is missed, drained or not.
            found += _drain_dependent([peak], intake_only) if peak["met"] else [peak]
    edge = results.get("edge")
    if edge is not None:
        found += _edge_targets(edge)
    found += _footprint_targets(results)
    if results.get("click") is not None:
        found += click_bench.targets(results["click"])
    return found


def _drain_dependent(found: list[dict[str, Any]], intake_only: bool) -> list[dict[str, Any]]:
    """Targets judged on the storm's end: not evaluated when the run stopped at the intake
    (--intake-only), since a partial state can look met or missed; the figure stays."""
    if not intake_only:
        return found
    return [
        {**item, "met": None, "figure": f"not evaluated: --intake-only (so far: {item['figure']})"}
        for item in found
    ]


IDLE_RSS_TARGET_MB = 80.0  # issue 19: idle, start to ready, and the storm's peak
READY_TARGET_S = 1.5
STORM_PEAK_RSS_TARGET_MB = 150.0


def _footprint_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Idle RSS and time to ready over every opsbot start of the run; the storm's peak."""
    starts = [s for s in results.get("starts", []) if s["process"] == "opsbot"]
    found: list[dict[str, Any]] = []
    idle = [s["idle_rss_mb"] for s in starts if s["idle_rss_mb"] is not None]
    if idle:
        found.append(
            {
                "target": f"idle RSS at most {IDLE_RSS_TARGET_MB:.0f} MB",
                "met": max(idle) <= IDLE_RSS_TARGET_MB,
                "figure": f"opsbot {fmt(spread(idle))} MB over {len(idle)} start(s), "
                f"highest {max(idle):.1f} MB",
            }
        )
    migrated = [s["ready_s"] for s in starts if s["database"] == "migrated"]
    ready = migrated or [s["ready_s"] for s in starts]
    if ready:
        found.append(
            {
                "target": f"start to /readyz 200 within {READY_TARGET_S} s"
                + (" (migrated database)" if migrated else ""),
                "met": max(ready) <= READY_TARGET_S,
                "figure": f"{fmt(spread(ready), 2)} s over {len(ready)} start(s), "
                f"slowest {max(ready):.2f} s",
            }
        )
    storm = results.get("storm") or {}
    storm_runs = storm.get("runs", [])
    peaks = [
        r["opsbot"]["peak_rss_mb"] for r in storm_runs if r.get("opsbot", {}).get("peak_rss_mb")
    ]
    if peaks:
        found += _drain_dependent(
            [
                {
                    "target": f"peak RSS during the storm at most "
                    f"{STORM_PEAK_RSS_TARGET_MB:.0f} MB",
                    "met": max(peaks) <= STORM_PEAK_RSS_TARGET_MB,
                    "figure": f"highest opsbot peak (VmHWM) {max(peaks):.1f} MB",
                }
            ],
            bool((storm.get("settings") or {}).get("intake_only")),
        )
    return found


def _edge_targets(edge: dict[str, Any]) -> list[dict[str, Any]]:
    s = edge["settings"]
    summary = edge["summary"]
    over = summary["peak_over_idle_mb"]
    delay = summary["page_delay_s"]
    missed = summary["pages_missed_under_siege"]
    limit_mb = edge_bench.RSS_TARGET_OVER_IDLE_MB
    limit_s = edge_bench.PAGE_TARGET_OVER_ALONE_S
    if missed:
        paging = f"no page within {s['page_timeout_s']:.0f} s in {missed} of {s['rounds']} round(s)"
    else:
        paging = (
            f"alone {fmt(summary['page_alone_s'], 3)} s, under siege "
            f"{fmt(summary['page_besieged_s'], 3)} s (+{fmt(delay, 3)} s; medians)"
        )
    return [
        {
            "target": f"peak RSS within {limit_mb:.0f} MB of idle during {s['parallel']} "
            f"parallel {s['upload_mb']} MB uploads to each route",
            "met": None if over is None else over <= limit_mb,
            "figure": f"idle {fmt(summary['idle_rss_mb'])} MB, peak {fmt(summary['peak_rss_mb'])} "
            f"MB (+{fmt(over)} MB)",
        },
        {
            "target": f"time to page with {s['slow_certs']} slow-certificate SNS messages and "
            f"{s['half_sent']} half-sent requests in flight within {limit_s:.0f} s of alone",
            "met": False if missed or delay is None else delay <= limit_s,
            "figure": paging,
        },
    ]


def summarise(results: dict[str, Any]) -> None:
    if results.get("edge") is not None:
        results["edge"]["summary"] = edge_bench.summary(results["edge"])
    if results.get("storm") is not None:
        results["storm"]["summary"] = storm_summary(results["storm"])
    results["footprint_summary"] = footprint_summary(results)
    results["targets"] = targets(results)


# -- the table ----------------------------------------------------------------------------


def _rows(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in rows
    ]


def _ack_round(run: dict[str, Any]) -> str:
    ratio = run["opsbot"]["kinds"][ALL]["p99_ms"] / run["bare"]["kinds"][ALL]["p99_ms"]
    cpu = run["opsbot"]["server_cpu_ms_per_request"]
    return f"{ratio:.2f}x ({'?' if cpu is None else f'{cpu:.2f}'})"


def _ack_table(ack: dict[str, Any]) -> list[str]:
    s = ack["settings"]
    lines = [
        "",
        f"1. Acknowledgement latency: {s['concurrency']} in flight, {s['requests']} signed "
        f"requests per run after {s['warmup']} warm-up, {s['rounds']} run(s) per server",
        f"   measured: {', '.join(ack['kinds_measured'])}",
    ]
    for name, why in ack["kinds_skipped"].items():
        lines.append(f"   skipped:  {name}: {why}")
    summary = ack["summary"]
    rows = [
        ["", "p50 ms", "p95 ms", "p99 ms", "req/s", "server CPU ms/req", "loadgen CPU", "errors"]
    ]
    kinds = [ALL] if len(ack["kinds_measured"]) == 1 else [*ack["kinds_measured"], ALL]
    for kind in kinds:
        for server, label in (("opsbot", "opsbot"), ("bare", "bare Bolt")):
            item = summary[server]
            per = item["kinds"][kind]
            name = label if kind == ALL else f"{label} · {kind}"
            whole = kind == ALL
            rows.append(
                [
                    name,
                    fmt(per["p50_ms"]),
                    fmt(per["p95_ms"]),
                    fmt(per["p99_ms"]),
                    fmt(item["throughput_rps"], 0) if whole else "",
                    fmt(item["server_cpu_ms_per_request"], 2) if whole else "",
                    fmt(item.get("loadgen_cpu_ms_per_request"), 2) if whole else "",
                    str(item["errors"]) if whole else "",
                ]
            )
    ratio = summary["ratio_opsbot_over_bare"]
    rows.append(
        [
            "opsbot / bare",
            fmt(ratio["p50_ms"], 2, "x"),
            fmt(ratio["p95_ms"], 2, "x"),
            fmt(ratio["p99_ms"], 2, "x"),
            fmt(ratio["throughput_rps"], 2, "x"),
            "",
            "",
            "",
        ]
    )
    behind = summary["opsbot"]
    lines += _rows(rows)
    if len(ack["rounds"]) > 1:
        # One run's rounds differ widely, with how much of the work behind the acks
        # runs during the flood (docs/benchmarks.md): each is shown with opsbot's CPU.
        each = ", ".join(_ack_round(r) for r in ack["rounds"])
        lines.append(f"   each run, p99 ratio (opsbot's CPU ms/req): {each}")
    if behind.get("answers", {}).get("median"):
        lines.append(
            f"   behind the acks: opsbot answered {fmt(behind['answers'], 0)} clicks per run "
            "through their response_urls, the last "
            f"{fmt(behind['last_answer_s'], 1)} s after the last ack "
            "(the next run waits for it)"
        )
    return lines


def _storm_table(storm: dict[str, Any]) -> list[str]:
    s = storm["settings"]
    am_info = storm["alertmanager"]
    summary = storm["summary"]
    lines = [
        "",
        f"2. Alarm storm: {s['notifications']} notifications, {s['alarms']} flapping alarms, "
        f"{s['teams']} teams, {s['concurrency']} in flight; opsbot reopen window = "
        f"Alertmanager group_interval = {s['reopen_window_s']} s; {s['runs']} run(s); "
        "times from the first request sent",
    ]
    am_title = (am_info.get("version") or "Alertmanager").replace("alertmanager, version", "AM")
    am_title = am_title.split(" (")[0]
    header = ["", "opsbot"] + ([am_title] if "alertmanager" in summary else [])
    if "alertmanager" not in summary:
        lines.append(f"   Alertmanager: {am_info.get('skipped')}")
    systems = [name for name in ("opsbot", "alertmanager") if name in summary]

    def row(label: str, render: Any) -> list[str]:
        return [label] + [render(summary[name], name) for name in systems]

    def runs_of(name: str) -> list[dict[str, Any]]:
        return [r[name] for r in storm["runs"] if name in r]

    def calls(_item: dict[str, Any], name: str) -> str:
        total: dict[str, int] = {}
        for r in runs_of(name):
            for method, n in r["slack_calls"].items():
                total[method] = total.get(method, 0) + n
        count = max(1, len(runs_of(name)))
        return ", ".join(f"{m} {n / count:.0f}" for m, n in sorted(total.items()))

    def actions(_item: dict[str, Any], name: str) -> str:
        total: dict[str, int] = {}
        for r in runs_of(name):
            for action, n in r["pagerduty_events_by_action"].items():
                total[str(action)] = total.get(str(action), 0) + n
        count = max(1, len(runs_of(name)))
        return ", ".join(f"{a} {n / count:.0f}" for a, n in sorted(total.items()))

    rows = [
        header,
        row(
            "intake rate, answered 2xx (notifications/s)",
            lambda i, _n: fmt(i["intake_rate_per_s"], 0),
        ),
        row(
            "not answered 2xx after resends",
            lambda i, _n: ", ".join(str(x) for x in i["not_2xx"]),
        ),
        row("answer p50 (ms)", lambda i, _n: fmt(i["request_p50_ms"], 0)),
        row("answer p99 (ms)", lambda i, _n: fmt(i["request_p99_ms"], 0)),
        row("time to first page (s)", lambda i, _n: fmt(i["first_page_s"], 3)),
        row("last PagerDuty trigger (s)", lambda i, _n: fmt(i["last_trigger_s"], 1)),
        row("last PagerDuty event (s)", lambda i, _n: fmt(i["last_pagerduty_event_s"], 1)),
        row("last Slack post or update (s)", lambda i, _n: fmt(i["last_slack_update_s"], 1)),
        row("drained (s)", lambda i, _n: fmt(i["drained_s"], 1)),
        row("PagerDuty events (mean per run)", actions),
        row(
            "PagerDuty incidents per alarm",
            lambda i, _n: (
                f"{i['pagerduty_incidents_per_alarm_min']}-{i['pagerduty_incidents_per_alarm_max']}"
            ),
        ),
        row("Slack calls (mean per run)", calls),
        row(
            "Slack posts: top-level + in threads",
            lambda i, n: (
                ", ".join(f"{top} + {thread}" for top, thread in i["slack_posts"])
                if n == "opsbot"
                else "n/a"
            ),
        ),
        row(
            "Slack 429s",
            lambda i, n: ", ".join(str(x) for x in i["slack_429s"]) if n == "opsbot" else "n/a",
        ),
        row(
            "Slack messages per alarm",
            lambda i, _n: (
                f"{i['slack_messages_per_alarm_min']}-"
                f"{i['slack_messages_per_alarm_max']} (mean "
                f"{fmt(i['slack_messages_per_alarm_mean'], 1)})"
            ),
        ),
        row(
            "one PD incident per incident",
            lambda i, n: (
                f"{sum(i['exactly_one_pagerduty_incident'])}/{i['runs']} runs"
                if n == "opsbot"
                else "n/a"
            ),
        ),
        row(
            "Slack messages posted twice",
            lambda i, n: str(sum(i["slack_messages_posted_twice"])) if n == "opsbot" else "n/a",
        ),
        row(
            "alarms left in a wrong state",
            lambda i, _n: ", ".join(str(x) for x in i["alarms_in_wrong_state"]),
        ),
        row("peak RSS (MB)", lambda i, _n: fmt(i["peak_rss_mb"], 1)),
        row("CPU used, storm to drained (s)", lambda i, _n: fmt(i["cpu_s"], 1)),
    ]
    return lines + _rows(rows)


def _footprint_table(summary: dict[str, Any]) -> list[str]:
    rows = [
        ["", "opsbot", "Alertmanager", "bare Bolt"],
        [
            "time to ready, fresh database (s)",
            fmt(summary["opsbot_ready_s_fresh_database"], 2),
            fmt(summary["alertmanager_ready_s"], 2),
            fmt(summary["bare_ready_s"], 2),
        ],
        [
            "time to ready, migrated database (s)",
            fmt(summary["opsbot_ready_s_migrated_database"], 2),
            "",
            "",
        ],
        [
            "first alarm paged after start, fresh database (s)",
            fmt(summary["opsbot_first_page_s_fresh_database"], 3),
            "",
            "",
        ],
        [
            "... after a restart, certificate kept (s)",
            fmt(summary["opsbot_first_page_s_migrated_database"], 3),
            "",
            "",
        ],
        [
            "idle RSS (MB)",
            fmt(summary["opsbot_idle_rss_mb"], 1),
            fmt(summary["alertmanager_idle_rss_mb"], 1),
            fmt(summary["bare_idle_rss_mb"], 1),
        ],
        [
            "RSS after the storm (MB)",
            fmt(summary["opsbot_rss_after_storm_mb"], 1),
            fmt(summary["alertmanager_rss_after_storm_mb"], 1),
            "",
        ],
    ]
    return [
        "",
        f"3. Footprint: every start in this run ({summary['starts_counted']}); "
        "ready = process spawned to the first 200 from its readiness URL",
        *_rows(rows),
    ]


def _plain_footprint_line(summary: dict[str, Any]) -> list[str]:
    if not summary.get("plain_idle_rss_mb", {}).get("runs"):
        return []
    return [
        f"   plain Bolt app (bench/plain_app.py): ready {fmt(summary['plain_ready_s'], 2)} s, "
        f"idle RSS {fmt(summary['plain_idle_rss_mb'], 1)} MB"
    ]


def _edge_table(edge: dict[str, Any]) -> list[str]:
    s = edge["settings"]
    summary = edge["summary"]
    lines = [
        "",
        f"4. The HTTP edge under attack: {s['parallel']} uploads of {s['upload_mb']} MB at once "
        f"per route (half chunked); a genuine alarm alone and behind {s['slow_certs']} "
        f"slow-certificate SNS messages and {s['half_sent']} half-sent requests, "
        f"{s['rounds']} round(s)",
    ]
    rows = [["", "answers", "closed", "sent before the answer (MB, max)", "peak RSS (MB)"]]
    for path, item in edge["uploads"].items():
        answers = ", ".join(f"{n} x {code}" for code, n in sorted(item["statuses"].items()))
        sent = item["sent_before_answer"]
        rows.append(
            [
                f"uploads to {path}",
                answers + (f", {len(item['failed'])} failed" if item["failed"] else ""),
                f"{item['closed']}/{item['parallel']}",
                fmt(max(sent) / 1e6 if sent else None),
                fmt(item["peak_rss_mb"]),
            ]
        )
    rows.append(["idle RSS before", "", "", "", fmt(summary["idle_rss_mb"])])
    lines += _rows(rows)
    besieged = edge["page_besieged"]
    page_rows = [
        ["", "median", "each round"],
        [
            "time to page alone (s)",
            fmt(summary["page_alone_s"], 3),
            ", ".join(fmt(v, 3) for v in edge["page_alone_s"]),
        ],
        [
            "time to page under siege (s)",
            fmt(summary["page_besieged_s"], 3),
            ", ".join(fmt(r["page_s"], 3) for r in besieged),
        ],
    ]
    lines += _rows(page_rows)
    for number, r in enumerate(besieged, 1):
        lines.append(
            f"   siege {number}: half-sent answered {r.get('half_sent_answers')}, closed by "
            f"opsbot {r.get('half_sent_closed_by_server')}/{s['half_sent']}; slow-certificate "
            f"messages answered {r.get('request_statuses')}"
        )
    return lines


def table(results: dict[str, Any]) -> str:
    lines = [
        f"opsbot benchmarks · {results['started']} · {'quick' if results['quick'] else 'full'}"
        f" · database {results['database']}",
        f"machine: {one_line(results['machine'])}",
        "figures: median [min-max] over runs where there are several",
    ]
    if results.get("ack") is not None:
        lines += _ack_table(results["ack"])
    if results.get("storm") is not None:
        lines += _storm_table(results["storm"])
    lines += _footprint_table(results["footprint_summary"])
    lines += _plain_footprint_line(results["footprint_summary"])
    if results.get("edge") is not None:
        lines += _edge_table(results["edge"])
    if results.get("click") is not None:
        lines += click_bench.table(results["click"])
    lines += ["", "Targets"]
    for item in results["targets"]:
        state = {True: "MET", False: "MISSED", None: "NOT EVALUATED"}[item["met"]]
        lines.append(f"  {state:<13} {item['target']}: {item['figure']}")
    if not results["targets"]:
        lines.append("  (none evaluated by the benchmarks selected)")
    return "\n".join(lines)


# -- files --------------------------------------------------------------------------------


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")


def chart(results: dict[str, Any], path: Path) -> str | None:
    """The PNG chart; returns why not when it cannot be drawn (matplotlib missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib): no chart"

    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    figure.suptitle(f"opsbot benchmarks · {one_line(results['machine'])}", fontsize=10)
    ack = results.get("ack")
    ax = axes[0][0]
    if ack is not None:
        labels = ["p50", "p95", "p99"]
        for offset, (server, colour) in enumerate((("opsbot", "tab:blue"), ("bare", "tab:gray"))):
            per = ack["summary"][server]["kinds"][ALL]
            medians = [per[f"{p}_ms"]["median"] for p in labels]
            low = [m - per[f"{p}_ms"]["min"] for m, p in zip(medians, labels, strict=True)]
            high = [per[f"{p}_ms"]["max"] - m for m, p in zip(medians, labels, strict=True)]
            xs = [i + offset * 0.38 for i in range(len(labels))]
            ax.bar(xs, medians, 0.36, yerr=[low, high], label=server, color=colour, capsize=3)
        ax.axhline(3000, color="red", linewidth=0.8, linestyle=":")
        ax.set_xticks([i + 0.19 for i in range(3)], labels)
        ax.set_ylabel("ms")
        ax.set_title("acknowledgement latency (median, bars min-max; dotted: Slack's 3 s)")
        ax.legend()
    else:
        ax.set_axis_off()

    storm = results.get("storm")
    first = storm["runs"][0] if storm and storm["runs"] else None
    styles = {"opsbot": "tab:blue", "alertmanager": "tab:orange"}
    ax_notify, ax_rss, ax_intake = axes[0][1], axes[1][0], axes[1][1]
    if first is not None:
        for system, colour in styles.items():
            run = first.get(system)
            if run is None:
                continue
            for what, style in (("pagerduty", "-"), ("slack", "--")):
                times = run["timeline"][what]
                ax_notify.step(
                    times,
                    range(1, len(times) + 1),
                    style,
                    where="post",
                    color=colour,
                    label=f"{system} {what}",
                )
            samples = run["rss_samples"]
            ax_rss.plot(
                [t for t, _ in samples], [v for _, v in samples], color=colour, label=system
            )
            intake = run["timeline"]["intake"]
            ax_intake.step(
                intake, range(1, len(intake) + 1), where="post", color=colour, label=system
            )
        ax_notify.set_title("storm: PagerDuty events and Slack calls (run 1)")
        ax_notify.set_xlabel("s from the first notification sent")
        ax_notify.legend(fontsize=8)
        ax_rss.axhline(PEAK_RSS_TARGET_MB, color="red", linewidth=0.8, linestyle=":")
        ax_rss.set_title("storm: resident memory, MB (run 1; dotted: 200 MB target)")
        ax_rss.set_xlabel("s from the first notification sent")
        ax_rss.legend(fontsize=8)
        ax_intake.set_title("storm: notifications accepted (run 1)")
        ax_intake.set_xlabel("s from the first notification sent")
        ax_intake.legend(fontsize=8)
    else:
        for ax in (ax_notify, ax_rss, ax_intake):
            ax.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return None
