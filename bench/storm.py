"""Item 2: an alarm storm through opsbot, and the same storm through Alertmanager.

The storm: `notifications` CloudWatch alarm state changes for `alarms`
distinct alarms spread over `teams` teams (each its own Slack channel and
PagerDuty routing key). Every alarm flaps ALARM, OK, ALARM, ... ; every other
alarm's last notification is a redelivery of the one before (SNS delivers at
least once), so half the alarms end in ALARM and half in OK. The notifications
go out round by round (every alarm's first change, then every alarm's second,
...), shuffled within a round, as fast as the service takes them.

opsbot gets them as signed SNS notifications on `POST /sns`, once its
subscription to the topic is confirmed, since SNS sends nothing before that:
the storm is signed with the certificate the confirmation was verified with
and opsbot kept (the first page that also fetches it is the footprint's, on a
fresh database). Alertmanager gets the same changes as alerts on
`POST /api/v2/alerts` (firing for ALARM, resolved with `endsAt` for OK), one
alert per request.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from bench import alertmanager
from bench.context import Context
from bench.procs import RssSampler, Service
from bench.sandbox import (
    TOPIC_ARN,
    Sandbox,
    confirm_subscription,
    opsbot_config,
    start_opsbot,
    team,
)
from bench.stats import percentile
from bot.db.engine import make_engine
from bot.sns.jobs import KEEP_AFTER_S
from sandbox.alarms import alarm_message, alarm_subject
from sandbox.sns import body as sns_body


@dataclass(frozen=True)
class StormSettings:
    notifications: int
    alarms: int
    teams: int
    reopen_window_s: int  # opsbot; Alertmanager's group_interval is set to the same
    concurrency: int
    runs: int
    drain_timeout_s: float
    # Measure the intake only: do not wait for Slack and PagerDuty to be told everything.
    intake_only: bool = False

    @classmethod
    def for_mode(cls, quick: bool, **overrides: Any) -> StormSettings:
        if quick:
            base = cls(
                notifications=40,
                alarms=5,
                teams=5,
                reopen_window_s=1,
                concurrency=8,
                runs=1,
                drain_timeout_s=60,
            )
        else:
            base = cls(
                notifications=2000,
                alarms=100,
                teams=1,
                reopen_window_s=30,
                concurrency=32,
                runs=3,
                drain_timeout_s=900,
            )
        return cls(**{**asdict(base), **{k: v for k, v in overrides.items() if v is not None}})


@dataclass(frozen=True)
class Change:
    """One alarm state change, as the storm sends it."""

    alarm: str
    team: int
    state: str  # ALARM | OK
    old_state: str
    at: datetime
    message_id: str
    redelivery: bool = False


def alarm_name(i: int, teams: int) -> str:
    return f"{team(i % teams + 1)}-svc{i:03d}-5xx"


def plan(settings: StormSettings, *, now: datetime, seed: int = 8) -> list[Change]:
    rng = random.Random(seed)
    base = now - timedelta(seconds=600)
    per_alarm = [
        settings.notifications // settings.alarms
        + (1 if i < settings.notifications % settings.alarms else 0)
        for i in range(settings.alarms)
    ]
    rounds: dict[int, list[Change]] = defaultdict(list)
    for i, count in enumerate(per_alarm):
        name = alarm_name(i, settings.teams)
        previous: Change | None = None
        for j in range(count):
            if i % 2 == 1 and j == count - 1 and previous is not None:
                change = Change(**{**asdict(previous), "redelivery": True})
            else:
                state = "ALARM" if j % 2 == 0 else "OK"
                change = Change(
                    alarm=name,
                    team=i % settings.teams + 1,
                    state=state,
                    old_state="OK" if state == "ALARM" else "ALARM",
                    at=base + timedelta(seconds=j, milliseconds=i),
                    message_id=str(uuid.UUID(int=rng.getrandbits(128))),
                )
            rounds[j].append(change)
            previous = change
    changes: list[Change] = []
    for j in sorted(rounds):
        batch = rounds[j]
        rng.shuffle(batch)
        changes.extend(batch)
    return changes


def final_states(changes: list[Change]) -> dict[str, str]:
    latest: dict[str, Change] = {}
    for change in changes:
        if change.alarm not in latest or change.at > latest[change.alarm].at:
            latest[change.alarm] = change
    return {name: change.state for name, change in latest.items()}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def sns_requests(changes: list[Change], sandbox: Sandbox) -> list[dict[str, Any]]:
    signed: dict[str, dict[str, Any]] = {}
    lines = []
    for change in changes:
        envelope = signed.get(change.message_id)
        if envelope is None:
            envelope = sandbox.sns.notification(
                alarm_message(
                    name=change.alarm, state=change.state, old_state=change.old_state, at=change.at
                ),
                topic_arn=TOPIC_ARN,
                subject=alarm_subject(change.alarm, change.state),
                message_id=change.message_id,
            )
            signed[change.message_id] = envelope
        lines.append(
            {
                "path": "/sns",
                "headers": {
                    "Content-Type": "text/plain; charset=UTF-8",
                    "x-amz-sns-message-type": "Notification",
                    "x-amz-sns-message-id": change.message_id,
                    "x-amz-sns-topic-arn": TOPIC_ARN,
                },
                "body": sns_body(envelope).decode(),
            }
        )
    return lines


def alertmanager_requests(changes: list[Change]) -> list[dict[str, Any]]:
    lines = []
    for change in changes:
        alert: dict[str, Any] = {
            "labels": {
                "alertname": change.alarm,
                "team": team(change.team),
                "severity": "critical",
            },
            "annotations": {"summary": f"{change.alarm} is {change.state}"},
        }
        if change.state == "ALARM":
            alert["startsAt"] = _iso(change.at)
        else:
            alert["startsAt"] = _iso(change.at - timedelta(seconds=1))
            alert["endsAt"] = _iso(change.at)
        lines.append(
            {
                "path": "/api/v2/alerts",
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps([alert]),
            }
        )
    return lines


def _send(
    ctx: Context, service: Service, requests: list[dict[str, Any]], label: str, concurrency: int
) -> dict[str, Any]:
    requests_file = ctx.run_dir / f"{label}-requests.jsonl"
    requests_file.write_text("\n".join(json.dumps(r) for r in requests) + "\n")
    out = ctx.run_dir / f"{label}-load.json"
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "storm",
        "--url",
        service.url,
        "--requests",
        str(requests_file),
        "--concurrency",
        str(concurrency),
        "--out",
        str(out),
    ]
    subprocess.run(argv, check=True, timeout=1800)
    return dict(json.loads(out.read_text()))


def is_2xx(status: str) -> bool:
    """A final answer that took the notification; a failed connection is named, not numbered."""
    return status.isdigit() and 200 <= int(status) < 300


def not_2xx(statuses: dict[str, int]) -> int:
    """Notifications whose last answer, after every resend, did not take them."""
    return sum(n for status, n in statuses.items() if not is_2xx(status))


def _intake(load: dict[str, Any]) -> dict[str, Any]:
    took_s = load["finished"] - load["started"]
    # Only a notification answered 2xx was taken: a 503 left after every resend, or a
    # refusal, is a notification lost, not intake.
    taken = sum(n for status, n in load["statuses"].items() if is_2xx(status))
    return {
        "sent": load["sent"],
        "statuses": load["statuses"],
        "answered_2xx": taken,
        "not_2xx": not_2xx(load["statuses"]),
        "resends": load["resends"],
        "intake_s": took_s,
        "intake_rate_per_s": taken / took_s if took_s > 0 else None,
        "request_p50_ms": percentile(load["latencies_ms"], 50),
        "request_p99_ms": percentile(load["latencies_ms"], 99),
    }


def _relative(times: list[float], started: float) -> list[float]:
    return [round(t - started, 4) for t in sorted(times)]


def _per_alarm(counts: dict[str, int], alarms: list[str]) -> dict[str, Any]:
    values = [counts.get(a, 0) for a in alarms]
    return {
        "min": min(values),
        "max": max(values),
        "mean": sum(values) / len(values),
        "total": sum(values),
    }


# -- opsbot ---------------------------------------------------------------------------------


def _pending(engine: Any) -> int:
    """Work opsbot still owes: deliveries not sent, notifications recorded but not applied."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT (SELECT count(*) FROM deliveries WHERE status = 'pending')"
                    " + (SELECT count(*) FROM received_messages"
                    " WHERE outcome = 'pending')"
                )
            ).scalar_one()
        )


def run_opsbot(
    ctx: Context, settings: StormSettings, changes: list[Change], number: int
) -> dict[str, Any]:
    label = f"storm-opsbot-{number}"
    with Sandbox(ctx.ca, teams=settings.teams, slack_rate_limited=True) as sandbox:
        database_url = ctx.databases.create("storm")
        requests = sns_requests(changes, sandbox)
        service = start_opsbot(
            sandbox,
            database_url=database_url,
            config=opsbot_config(settings.teams, reopen_window_s=settings.reopen_window_s),
            run_dir=ctx.run_dir,
            label=label,
            settle_s=0.2 if ctx.quick else 2.0,
        )
        ctx.record_start(service, what="storm", database="fresh")
        confirm_subscription(sandbox, service)
        time.sleep(KEEP_AFTER_S + 1.0)  # the certificate is kept before the storm, as it would be
        engine = make_engine(database_url)
        try:
            with RssSampler(service.pid) as sampler:
                cpu_before = service.cpu_seconds()
                fetched_before = sandbox.sns.cert_fetches
                ctx.say(f"storm {number}: {len(requests)} SNS notifications to opsbot")
                load = _send(ctx, service, requests, label, settings.concurrency)
                deadline = time.monotonic() + settings.drain_timeout_s
                drained = False
                while time.monotonic() < deadline and not settings.intake_only:
                    if service.process.poll() is not None:
                        raise RuntimeError("opsbot exited during the storm:\n" + service.log_tail())
                    if _pending(engine) == 0:
                        drained = True
                        break
                    time.sleep(0.2)
                cpu_after = service.cpu_seconds()
            rss_after = service.rss_mb()
            peak = service.peak_rss_mb()
            result = _analyse_opsbot(sandbox, engine, changes, load)
            # None: the storm is verified with the certificate of the confirmation.
            result["certificate_fetches_in_storm"] = sandbox.sns.cert_fetches - fetched_before
        finally:
            engine.dispose()
            service.stop()
    result.update(
        drained=drained,
        rss_after_storm_mb=rss_after,
        idle_rss_mb=service.idle_rss_mb,
        peak_rss_mb=peak,
        cpu_s=None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
        rss_samples=[(round(t - load["started"], 3), round(v, 1)) for t, v in sampler.samples],
    )
    return result


def _analyse_opsbot(
    sandbox: Sandbox, engine: Any, changes: list[Change], load: dict[str, Any]
) -> dict[str, Any]:
    started = load["started"]
    finals = final_states(changes)
    alarms = sorted(finals)
    with engine.connect() as connection:
        incidents = [
            dict(row._mapping)
            for row in connection.execute(
                text("SELECT id, alarm_name, dedup_key, status, paged FROM incidents ORDER BY id")
            )
        ]
        messages_db = [
            dict(row._mapping)
            for row in connection.execute(text("SELECT key, channel_id, ts FROM slack_messages"))
        ]
        outbox = [
            {"kind": kind, "status": status, "count": int(count)}
            for kind, status, count in connection.execute(
                text(
                    "SELECT kind, status, count(*) FROM deliveries"
                    " GROUP BY kind, status ORDER BY kind, status"
                )
            )
        ]
    with sandbox.pagerduty.lock:
        events = [dict(e) for e in sandbox.pagerduty.events]
        pd_incidents = [dict(i) for i in sandbox.pagerduty.incidents.values()]
    with sandbox.slack.lock:
        messages = list(sandbox.slack.all_messages())
        calls = [
            c
            for c in sandbox.slack.calls
            if c.ok and c.method in ("chat.postMessage", "chat.update")
        ]
        refused = [c for c in sandbox.slack.calls if c.error == "ratelimited"]

    alarm_by_key = {i["dedup_key"]: i["alarm_name"] for i in incidents}
    incident_alarm = {i["id"]: i["alarm_name"] for i in incidents}
    incidents_per_alarm = Counter(i["alarm_name"] for i in incidents)

    # PagerDuty: exactly one incident per paged opsbot incident, none for anything else.
    pd_per_key = Counter(i["incident_key"] for i in pd_incidents)
    pd_per_incident = [pd_per_key.get(i["dedup_key"], 0) for i in incidents if i["paged"]]
    strangers = [k for k in pd_per_key if k not in alarm_by_key]
    pd_per_alarm = Counter(
        alarm_by_key[i["incident_key"]] for i in pd_incidents if i["incident_key"] in alarm_by_key
    )
    events_per_alarm = Counter(alarm_by_key.get(e["dedup_key"], "?") for e in events)
    triggers = [e["received_at"] for e in events if e.get("event_action") == "trigger"]

    # Slack: one message per incident (top-level, or in its group's thread), one
    # top-level message per group, and nothing posted twice.
    known = {(m["channel_id"], m["ts"]): m["key"] for m in messages_db if m["ts"]}
    top = [m for m in messages if m.thread_ts is None]
    orphans = [m for m in top if (m.channel, m.ts) not in known]
    alarm_of_message: dict[tuple[str, str], str] = {}
    for m in messages:
        key = known.get((m.channel, m.ts))
        if key is not None and key.startswith("incident:"):
            alarm_of_message[(m.channel, m.ts)] = incident_alarm.get(int(key.split(":", 1)[1]), "?")
    per_key = Counter(known.get((m.channel, m.ts)) for m in messages if (m.channel, m.ts) in known)
    deliveries = Counter(
        ((m.metadata or {}).get("event_payload") or {}).get("delivery")
        for m in messages
        if m.metadata
    )
    posted_twice = sorted(d for d, n in deliveries.items() if d is not None and n > 1)
    posts_per_alarm: Counter[str] = Counter()
    updates_per_alarm: Counter[str] = Counter()
    for m in messages:
        alarm = alarm_of_message.get((m.channel, m.ts)) or alarm_of_message.get(
            (m.channel, m.thread_ts or m.ts), "?"
        )
        posts_per_alarm[alarm] += 1
        updates_per_alarm[alarm] += m.updates

    # The end state is right: open incidents for alarms last in ALARM, resolved for OK,
    # and the last PagerDuty event of each says so too.
    wrong_final = []
    latest_incident = {i["alarm_name"]: i for i in incidents}
    pd_by_key = {i["incident_key"]: i for i in pd_incidents}
    last_event = {e["dedup_key"]: e.get("event_action") for e in events}
    text_by_key = {known[(m.channel, m.ts)]: m.text for m in messages if (m.channel, m.ts) in known}
    for alarm, state in finals.items():
        incident = latest_incident.get(alarm)
        if incident is None:
            wrong_final.append(f"{alarm}: no incident")
            continue
        want_open = state == "ALARM"
        if (incident["status"] == "open") != want_open:
            wrong_final.append(f"{alarm}: incident {incident['status']}, expected {state}")
        pd = pd_by_key.get(incident["dedup_key"])
        if pd is None or (pd["status"] != "resolved") != want_open:
            wrong_final.append(f"{alarm}: PagerDuty {pd and pd['status']}, expected {state}")
        want_event = "trigger" if want_open else "resolve"
        if last_event.get(incident["dedup_key"]) != want_event:
            got = last_event.get(incident["dedup_key"])
            wrong_final.append(f"{alarm}: last PagerDuty event {got}, expected {want_event}")
        shown = text_by_key.get(f"incident:{incident['id']}", "")
        if f" {state}: " not in shown:
            wrong_final.append(f"{alarm}: Slack shows {shown[:60]!r}, expected {state}")

    slack_times = [c.at for c in calls]
    pd_times = [e["received_at"] for e in events]
    exactly_once = bool(pd_per_incident) and all(n == 1 for n in pd_per_incident) and not strangers
    no_duplicates = not orphans and not posted_twice and all(n == 1 for n in per_key.values())
    return {
        "intake": _intake(load),
        "first_page_s": min(triggers) - started if triggers else None,
        "last_trigger_s": max(triggers) - started if triggers else None,
        "last_pagerduty_event_s": max(pd_times) - started if pd_times else None,
        "last_slack_update_s": max(slack_times) - started if slack_times else None,
        "drained_s": max(pd_times + slack_times) - started if pd_times or slack_times else None,
        "pagerduty_events": len(events),
        "pagerduty_events_by_action": dict(Counter(e.get("event_action") for e in events)),
        "pagerduty_events_per_alarm": _per_alarm(events_per_alarm, alarms),
        "pagerduty_incidents_per_alarm": _per_alarm(pd_per_alarm, alarms),
        "incidents_per_alarm": _per_alarm(incidents_per_alarm, alarms),
        "slack_calls": dict(Counter(c.method for c in calls)),
        "slack_top_level_posts": len(top),
        "slack_thread_posts": len(messages) - len(top),
        "slack_429s": len(refused),
        "slack_messages_per_alarm": _per_alarm(posts_per_alarm, alarms),
        "slack_updates_per_alarm": _per_alarm(updates_per_alarm, alarms),
        "checks": {
            "one_pagerduty_incident_per_incident": exactly_once,
            "pagerduty_incidents_not_from_an_incident": len(strangers),
            "no_slack_message_posted_twice": no_duplicates,
            "no_slack_429": not refused,
            "slack_messages_posted_twice": len(posted_twice) + len(orphans),
            "final_state_right": not wrong_final,
            "alarms_in_wrong_state": len({w.split(":", 1)[0] for w in wrong_final}),
            "final_state_problems": wrong_final[:10],
        },
        "outbox": outbox,
        "timeline": {
            "pagerduty": _relative(pd_times, started),
            "slack": _relative(slack_times, started),
            "intake": _relative(load["done_at"], started),
        },
    }


# -- Alertmanager ----------------------------------------------------------------------------

SUBJECT = re.compile(r"^\[(FIRING|RESOLVED)(?::\d+)?\]\s+(\S+)")


def _subject(text_value: str | None) -> tuple[str, str] | None:
    match = SUBJECT.match(text_value or "")
    return (match.group(1), match.group(2)) if match else None


def _am_state(
    sandbox: Sandbox,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    with sandbox.pagerduty.lock:
        events = [dict(e) for e in sandbox.pagerduty.events]
        pd_incidents = [dict(i) for i in sandbox.pagerduty.incidents.values()]
    with sandbox.slack.lock:
        posts = [dict(w) for w in sandbox.slack.webhooks]
    return events, pd_incidents, posts


def _am_alarm_of_event(event: dict[str, Any]) -> str | None:
    found = _subject((event.get("payload") or {}).get("summary") or event.get("description"))
    return found[1] if found else None


def _am_post(post: dict[str, Any]) -> tuple[str, str] | None:
    for attachment in post.get("attachments") or []:
        found = _subject(attachment.get("title"))
        if found:
            return found
    return _subject(post.get("text"))


def _am_wrong_states(sandbox: Sandbox, finals: dict[str, str]) -> list[str]:
    """Alarms whose last PagerDuty event or Slack post does not show their final state."""
    events, _incidents, posts = _am_state(sandbox)
    last_pd: dict[str, str] = {}
    key_alarm: dict[str, str] = {}
    for event in events:
        alarm = _am_alarm_of_event(event) or key_alarm.get(event.get("dedup_key", ""))
        if alarm is None:
            continue
        key_alarm[event["dedup_key"]] = alarm
        last_pd[alarm] = event.get("event_action", "")
    last_slack: dict[str, str] = {}
    for post in posts:
        found = _am_post(post)
        if found:
            last_slack[found[1]] = found[0]
    wrong = []
    for alarm, state in finals.items():
        want_pd, want_slack = ("trigger", "FIRING") if state == "ALARM" else ("resolve", "RESOLVED")
        if last_pd.get(alarm) != want_pd:
            wrong.append(f"{alarm}: PagerDuty last got {last_pd.get(alarm)}, expected {state}")
        if last_slack.get(alarm) != want_slack:
            wrong.append(f"{alarm}: Slack last got {last_slack.get(alarm)}, expected {state}")
    return wrong


def run_alertmanager(
    ctx: Context, settings: StormSettings, changes: list[Change], number: int, binary: str
) -> dict[str, Any]:
    label = f"storm-alertmanager-{number}"
    finals = final_states(changes)
    with Sandbox(ctx.ca, teams=settings.teams) as sandbox:
        service = alertmanager.start(
            binary, sandbox, ctx, label=label, group_interval_s=settings.reopen_window_s
        )
        ctx.record_start(service, what="storm", database="none")
        try:
            with RssSampler(service.pid) as sampler:
                cpu_before = service.cpu_seconds()
                ctx.say(f"storm {number}: {len(changes)} alerts to Alertmanager")
                load = _send(
                    ctx, service, alertmanager_requests(changes), label, settings.concurrency
                )
                # Alertmanager has no queue to look into: it is done when every alarm's
                # last notification shows its final state, or when nothing more came
                # for two group intervals (an alarm it shows wrong stays wrong until
                # resolve_timeout, 5 min, ends a firing alert nobody resends).
                quiet_s = 2 * settings.reopen_window_s + 2
                deadline = time.monotonic() + settings.drain_timeout_s
                seen, changed = -1, time.monotonic()
                wrong = _am_wrong_states(sandbox, finals)
                while wrong and time.monotonic() < deadline and not settings.intake_only:
                    if service.process.poll() is not None:
                        raise RuntimeError(
                            "Alertmanager exited during the storm:\n" + service.log_tail()
                        )
                    events, _incidents, posts = _am_state(sandbox)
                    if len(events) + len(posts) != seen:
                        seen, changed = len(events) + len(posts), time.monotonic()
                    elif time.monotonic() - changed > quiet_s:
                        break
                    time.sleep(0.2)
                    wrong = _am_wrong_states(sandbox, finals)
                drained = not wrong
                # Anything still on its way after the final states arrived counts too.
                time.sleep(0.5 if ctx.quick else 2.0)
                cpu_after = service.cpu_seconds()
            rss_after = service.rss_mb()
            peak = service.peak_rss_mb()
            events, pd_incidents, posts = _am_state(sandbox)
        finally:
            service.stop()

    started = load["started"]
    alarms = sorted(finals)
    key_alarm: dict[str, str] = {}
    for event in events:
        alarm = _am_alarm_of_event(event)
        if alarm:
            key_alarm.setdefault(event["dedup_key"], alarm)
    events_per_alarm = Counter(key_alarm.get(e["dedup_key"], "?") for e in events)
    pd_per_alarm = Counter(key_alarm.get(i["incident_key"], "?") for i in pd_incidents)
    posts_per_alarm: Counter[str] = Counter()
    for post in posts:
        found = _am_post(post)
        posts_per_alarm[found[1] if found else "?"] += 1
    triggers = [e["received_at"] for e in events if e.get("event_action") == "trigger"]
    pd_times = [e["received_at"] for e in events]
    slack_times = [p["at"] for p in posts]
    return {
        "intake": _intake(load),
        "drained": drained,
        "first_page_s": min(triggers) - started if triggers else None,
        "last_trigger_s": max(triggers) - started if triggers else None,
        "last_pagerduty_event_s": max(pd_times) - started if pd_times else None,
        "last_slack_update_s": max(slack_times) - started if slack_times else None,
        "drained_s": max(pd_times + slack_times) - started if pd_times or slack_times else None,
        "notifications": len(events) + len(posts),
        "pagerduty_events": len(events),
        "pagerduty_events_by_action": dict(Counter(e.get("event_action") for e in events)),
        "pagerduty_events_per_alarm": _per_alarm(events_per_alarm, alarms),
        "pagerduty_incidents_per_alarm": _per_alarm(pd_per_alarm, alarms),
        "slack_calls": {"incoming webhook": len(posts)},
        "slack_messages_per_alarm": _per_alarm(posts_per_alarm, alarms),
        "checks": {
            "final_state_right": not wrong,
            "alarms_in_wrong_state": len({w.split(":", 1)[0] for w in wrong}),
            "final_state_problems": wrong[:10],
        },
        "idle_rss_mb": service.idle_rss_mb,
        "rss_after_storm_mb": rss_after,
        "peak_rss_mb": peak,
        "cpu_s": None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
        "rss_samples": [(round(t - started, 3), round(v, 1)) for t, v in sampler.samples],
        "timeline": {
            "pagerduty": _relative(pd_times, started),
            "slack": _relative(slack_times, started),
            "intake": _relative(load["done_at"], started),
        },
    }


def run(ctx: Context, settings: StormSettings, *, alertmanager_mode: str) -> dict[str, Any]:
    binary: str | None = None
    skipped = ""
    if alertmanager_mode == "skip":
        skipped = "skipped on request (--alertmanager skip)"
    else:
        binary, skipped = alertmanager.ensure(install=alertmanager_mode == "install", say=ctx.say)
        if binary is None:
            ctx.say(f"Alertmanager column skipped: {skipped}")
    runs: list[dict[str, Any]] = []
    for number in range(1, settings.runs + 1):
        changes = plan(settings, now=datetime.now(UTC))
        this_run: dict[str, Any] = {"opsbot": run_opsbot(ctx, settings, changes, number)}
        if binary is not None:
            this_run["alertmanager"] = run_alertmanager(ctx, settings, changes, number, binary)
        runs.append(this_run)
    return {
        "settings": asdict(settings),
        "alertmanager": {
            "binary": binary,
            "version": alertmanager.version(binary) if binary else None,
            "skipped": skipped or None,
        },
        "runs": runs,
    }
