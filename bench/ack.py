"""Item 1: acknowledgement latency, opsbot against a bare Bolt app that only acks.

Both servers run side by side, each in its own process, and are loaded in
turn (A B, then B A, ...) by the load generator in a third process, so that
drift in the machine's load falls on both alike. Each round is a warm-up,
`requests` signed requests kept `concurrency` in flight, then a wait until the
server has done the work its acks left behind (opsbot answers clicks after
acking them), so that the next run has the machine to itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.bare_app import STYLES
from bench.context import Context
from bench.procs import Service, spawn_on_free_port
from bench.request_kinds import KINDS, RequestKind
from bench.sandbox import (
    BOT_TOKEN,
    SIGNING_SECRET,
    Sandbox,
    opsbot_config,
    start_opsbot,
)
from bench.stats import latency_summary, spread
from sandbox import slack_requests
from sandbox.environment import clean_environment

ALL = "all kinds"
# After a run, the server has settled when it used under 2% of a core for a
# second and no answer came; it is given at most this long.
IDLE_CPU_S_PER_S = 0.02
SETTLE_LIMIT_S = 600.0


@dataclass(frozen=True)
class AckSettings:
    concurrency: int
    requests: int
    warmup: int
    rounds: int

    @classmethod
    def for_mode(cls, quick: bool) -> AckSettings:
        if quick:
            return cls(concurrency=50, requests=200, warmup=40, rounds=1)
        return cls(concurrency=200, requests=3000, warmup=500, rounds=5)


def _start_bare(
    sandbox: Sandbox, ctx: Context, *, style: str = "threads", work_ms: float = 0.0
) -> Service:
    env = clean_environment(
        {
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_API_URL": sandbox.slack.api_url,
        }
    )
    return spawn_on_free_port(
        f"bare-bolt-{style}" if work_ms else "bare-bolt",
        lambda port: [
            *(sys.executable, "-m", "bench.bare_app", "--host", "127.0.0.1", "--port", str(port)),
            *("--style", style, "--work-ms", str(work_ms)),
        ],
        env=env,
        ready_path="/readyz",
        log_path=ctx.run_dir / f"ack-bare-{style}-{work_ms:g}.log",
        settle_s=0.2 if ctx.quick else 2.0,
    )


def _probe(url: str, kind: RequestKind, response_url: str) -> tuple[int, str]:
    body = kind.body(response_url)
    answer = httpx.post(
        url + "/slack/events",
        content=body,
        headers=slack_requests.signed_headers(SIGNING_SECRET, body),
        timeout=30,
    )
    return answer.status_code, answer.text[:200]


def sort_kinds(
    opsbot_url: str, bare_url: str, response_url: str, *, say: Callable[[str], None]
) -> tuple[list[RequestKind], dict[str, str]]:
    """The kinds to measure, and those skipped with why: only a kind opsbot has no
    listener for (Bolt answers 404) is skipped. Any other refusal is a fault, and a
    verdict over the kinds left would hide it: the benchmark fails instead."""
    measured: list[RequestKind] = []
    skipped: dict[str, str] = {}
    for kind in KINDS:
        status, text = _probe(opsbot_url, kind, response_url)
        bare_status, bare_text = _probe(bare_url, kind, response_url)
        if bare_status != 200:
            raise RuntimeError(f"the bare app answered {bare_status} to {kind.name}: {bare_text}")
        if status == 404:
            skipped[kind.name] = f"opsbot answers 404 (no listener for it yet): {text[:80]}"
            say(f"ack: {kind.name} skipped: {skipped[kind.name]}")
        elif status != 200:
            raise RuntimeError(f"opsbot answered {status} to {kind.name}: {text}")
        else:
            measured.append(kind)
    if not measured:
        raise RuntimeError("opsbot handles none of the request kinds")
    return measured, skipped


def _load(
    ctx: Context,
    service: Service,
    kinds: list[RequestKind],
    settings: AckSettings,
    response_url: str,
    answers: Callable[[str], list[float]],
    label: str,
) -> dict[str, Any]:
    out = ctx.run_dir / f"{label}.json"
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "ack",
        "--url",
        service.url,
        "--secret",
        SIGNING_SECRET,
        "--kinds",
        ",".join(k.name for k in kinds),
        "--response-url",
        response_url,
        "--concurrency",
        str(settings.concurrency),
        "--requests",
        str(settings.requests),
        "--warmup",
        str(settings.warmup),
        "--out",
        str(out),
    ]
    cpu_before = service.cpu_seconds()
    subprocess.run(argv, check=True, timeout=900)
    cpu_after = service.cpu_seconds()
    behind = _work_behind(service, lambda: answers(urlsplit(response_url).path))
    raw = json.loads(out.read_text())
    per_kind: dict[str, Any] = {}
    everything: list[float] = []
    errors = 0
    for name, values in raw["latencies_ms"].items():
        per_kind[name] = latency_summary(values)
        everything.extend(values)
        errors += sum(n for status, n in raw["statuses"][name].items() if status != "200")
    per_kind[ALL] = latency_summary(everything)
    sent = settings.warmup + settings.requests
    cpu_ms = None
    if cpu_before is not None and cpu_after is not None:
        cpu_ms = (cpu_after - cpu_before) * 1000 / sent
    return {
        "kinds": per_kind,
        "throughput_rps": settings.requests / raw["duration_s"],
        "errors": errors,
        "statuses": raw["statuses"],
        "server_cpu_ms_per_request": cpu_ms,
        "loadgen_cpu_ms_per_request": raw["cpu_s"] * 1000 / sent,
        "sent": raw["sent"],
        "work_behind": behind,
    }


def _work_behind(service: Service, answers: Callable[[], list[float]]) -> dict[str, Any]:
    """Wait until the server has done the work its acks left behind, and say how long
    that took: the next run must not share the machine with it.

    Done is a whole second with no new answer on a response_url and the server
    all but idle. Returns the answers' count and when the last came, counted
    from the last ack.
    """
    ended = time.time()
    while time.time() - ended < SETTLE_LIMIT_S:
        count, cpu = len(answers()), service.cpu_seconds()
        time.sleep(1.0)
        after = service.cpu_seconds()
        idle = cpu is None or after is None or after - cpu < IDLE_CPU_S_PER_S
        if idle and len(answers()) == count:
            break
    times = answers()
    return {
        "answers": len(times),
        "last_answer_s": round(max(times) - ended, 2) if times else None,
        "settled_s": round(time.time() - ended, 2),
    }


def run(ctx: Context, settings: AckSettings) -> dict[str, Any]:
    with Sandbox(ctx.ca, teams=1) as sandbox:
        response_url = sandbox.slack.response_url()
        database_url = ctx.databases.create("ack")
        opsbot = start_opsbot(
            sandbox,
            database_url=database_url,
            config=opsbot_config(1, reopen_window_s=300),
            run_dir=ctx.run_dir,
            label="ack-opsbot",
            settle_s=0.2 if ctx.quick else 2.0,
        )
        ctx.record_start(opsbot, what="ack", database="fresh")
        bare = _start_bare(sandbox, ctx)
        ctx.record_start(bare, what="ack", database="none")
        try:
            measured, skipped = sort_kinds(opsbot.url, bare.url, response_url, say=ctx.say)
            rounds: list[dict[str, Any]] = []
            for number in range(settings.rounds):
                order = [opsbot, bare] if number % 2 == 0 else [bare, opsbot]
                this_round: dict[str, Any] = {}
                for service in order:
                    key = "opsbot" if service is opsbot else "bare"
                    ctx.say(
                        f"ack round {number + 1}/{settings.rounds}: {key}, "
                        f"{settings.requests} requests, {settings.concurrency} in flight"
                    )
                    label = f"ack-{key}-{number + 1}"
                    this_round[key] = _load(
                        ctx,
                        service,
                        measured,
                        settings,
                        f"{response_url}-{label}",
                        sandbox.slack.answers_under,
                        label,
                    )
                rounds.append(this_round)
            opsbot_peak = opsbot.peak_rss_mb()
        finally:
            opsbot.stop()
            bare.stop()
    return {
        "settings": settings.__dict__,
        "kinds_measured": [k.name for k in measured],
        "kinds_skipped": skipped,
        "rounds": rounds,
        "summary": _summarise(rounds, [k.name for k in measured] + [ALL]),
        "opsbot_peak_rss_mb": opsbot_peak,
    }


def _summarise(rounds: list[dict[str, Any]], kinds: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for server in ("opsbot", "bare"):
        per_kind = {}
        for kind in kinds:
            per_kind[kind] = {
                stat: spread(r[server]["kinds"][kind][stat] for r in rounds)
                for stat in ("p50_ms", "p95_ms", "p99_ms", "max_ms")
            }
        summary[server] = {
            "kinds": per_kind,
            "throughput_rps": spread(r[server]["throughput_rps"] for r in rounds),
            "server_cpu_ms_per_request": spread(
                r[server]["server_cpu_ms_per_request"] for r in rounds
            ),
            "loadgen_cpu_ms_per_request": spread(
                r[server]["loadgen_cpu_ms_per_request"] for r in rounds
            ),
            "errors": sum(r[server]["errors"] for r in rounds),
            "answers": spread(r[server]["work_behind"]["answers"] for r in rounds),
            "last_answer_s": spread(r[server]["work_behind"]["last_answer_s"] for r in rounds),
        }
    ratios: dict[str, Any] = {}
    for stat in ("p50_ms", "p95_ms", "p99_ms"):
        ratios[stat] = spread(
            r["opsbot"]["kinds"][ALL][stat] / r["bare"]["kinds"][ALL][stat] for r in rounds
        )
    ratios["throughput_rps"] = spread(
        r["opsbot"]["throughput_rps"] / r["bare"]["throughput_rps"] for r in rounds
    )
    summary["ratio_opsbot_over_bare"] = ratios
    return summary


# The work each request leaves behind its ack in `run_styles`: CPU standing for
# a click's statements and calls (opsbot's took about 0.3 ms of its own CPU per
# request in the ack benchmark, and its database's on the same cores).
STYLE_WORK_MS = 2.0


def run_styles(ctx: Context, settings: AckSettings) -> dict[str, Any]:
    """Issue 19.2: Bolt's sync App dispatched in the threadpool, the same app dispatched
    on the event loop (opsbot's way for buttons and commands) and AsyncApp, each
    leaving the same work behind its ack to opsbot's pool (bot/after_ack.py).
    Loaded in turn, like `run`; ack latency and when the last piece of work answered."""
    with Sandbox(ctx.ca, teams=1) as sandbox:
        response_url = sandbox.slack.response_url()
        services = {
            style: _start_bare(sandbox, ctx, style=style, work_ms=STYLE_WORK_MS) for style in STYLES
        }
        for service in services.values():
            ctx.record_start(service, what="ack styles", database="none")
        try:
            for style, service in services.items():
                for kind in KINDS:
                    status, text = _probe(service.url, kind, response_url)
                    if status != 200:
                        raise RuntimeError(f"the {style} app answered {status}: {text}")
            rounds: list[dict[str, Any]] = []
            for number in range(settings.rounds):
                order = list(STYLES) if number % 2 == 0 else list(reversed(STYLES))
                this_round: dict[str, Any] = {}
                for style in order:
                    ctx.say(
                        f"ack styles round {number + 1}/{settings.rounds}: {style}, "
                        f"{settings.requests} requests, {settings.concurrency} in flight"
                    )
                    label = f"ack-style-{style}-{number + 1}"
                    this_round[style] = _load(
                        ctx,
                        services[style],
                        list(KINDS),
                        settings,
                        f"{response_url}-{label}",
                        sandbox.slack.answers_under,
                        label,
                    )
                rounds.append(this_round)
        finally:
            for service in services.values():
                service.stop()
    summary: dict[str, Any] = {}
    for style in STYLES:
        summary[style] = {
            stat: spread(r[style]["kinds"][ALL][stat] for r in rounds)
            for stat in ("p50_ms", "p99_ms", "max_ms")
        }
        summary[style]["last_answer_s"] = spread(
            r[style]["work_behind"]["last_answer_s"] for r in rounds
        )
        summary[style]["answers"] = spread(r[style]["work_behind"]["answers"] for r in rounds)
        summary[style]["errors"] = sum(r[style]["errors"] for r in rounds)
    for style in ("loop", "async"):
        summary[f"p99_{style}_over_threads"] = spread(
            r[style]["kinds"][ALL]["p99_ms"] / r["threads"]["kinds"][ALL]["p99_ms"] for r in rounds
        )
    return {
        "settings": settings.__dict__,
        "work_ms": STYLE_WORK_MS,
        "rounds": rounds,
        "summary": summary,
    }
