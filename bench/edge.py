"""Item 4: the HTTP edge under attack (issue 17, "bounded requests").

(a) Uploads: `parallel` bodies of `upload_mb` MB at once to each of `/sns`,
`/slack/events` and `/pagerduty/webhooks` (every other one chunked, the rest
with a Content-Length), from another process; opsbot's resident memory is
sampled every 20 ms throughout. Target: its peak within 50 MB of its idle RSS.

(b) Paging under siege: the time from a genuine alarm's POST to its PagerDuty
trigger, alone, and while `slow_certs` SNS messages whose certificate host
accepts connections and never answers and `half_sent` half-sent requests (half
stopped in their head, half in their body) are in flight. Target: within 2 s
of the time alone.
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from bench.context import Context
from bench.procs import RssSampler, Service
from bench.sandbox import TOPIC_ARN, Sandbox, opsbot_config, start_opsbot, team, time_to_page
from sandbox.alarms import alarm_message
from sandbox.sns import body as sns_body

ROUTES = {
    "/sns": {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-topic-arn": TOPIC_ARN},
    "/slack/events": {"Content-Type": "application/x-www-form-urlencoded"},
    "/pagerduty/webhooks": {"Content-Type": "application/json"},
}
RSS_TARGET_OVER_IDLE_MB = 50.0
PAGE_TARGET_OVER_ALONE_S = 2.0


@dataclass(frozen=True)
class EdgeSettings:
    parallel: int
    upload_mb: int
    slow_certs: int
    half_sent: int
    rounds: int
    page_timeout_s: float

    @classmethod
    def for_mode(cls, quick: bool) -> EdgeSettings:
        if quick:
            return cls(
                parallel=4, upload_mb=5, slow_certs=2, half_sent=6, rounds=1, page_timeout_s=60
            )
        return cls(
            parallel=20, upload_mb=100, slow_certs=20, half_sent=50, rounds=3, page_timeout_s=300
        )


class SilentHost:
    """A TCP server that accepts connections and never says a word (a stuck certificate host)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-host", daemon=True)

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(connection)

    def __enter__(self) -> SilentHost:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for connection in self._held:
            connection.close()
        self._listener.close()


def _loadgen(ctx: Context, label: str, argv: list[str]) -> dict[str, Any]:
    out = ctx.run_dir / f"{label}.json"
    command = [sys.executable, "-m", "bench.loadgen", *argv, "--out", str(out)]
    subprocess.run(command, check=True, timeout=1800)
    return dict(json.loads(out.read_text()))


def _uploads(
    ctx: Context, service: Service, settings: EdgeSettings, path: str, headers: dict[str, str]
) -> dict[str, Any]:
    label = "edge-uploads-" + path.strip("/").replace("/", "-")
    with RssSampler(service.pid, interval_s=0.02) as sampler:
        result = _loadgen(
            ctx,
            label,
            [
                "uploads",
                "--url",
                service.url,
                "--path",
                path,
                "--headers",
                json.dumps(headers),
                "--parallel",
                str(settings.parallel),
                "--size",
                str(settings.upload_mb * 1_000_000),
            ],
        )
        time.sleep(0.2)  # anything the last answers left behind
    samples = [value for _, value in sampler.samples]
    result["peak_rss_mb"] = max(samples) if samples else None
    result["samples"] = len(samples)
    return result


def _slow_cert_requests(sandbox: Sandbox, silent: SilentHost, count: int) -> list[dict[str, Any]]:
    """Notifications whose certificate URL (allowed, each its own) leads to the silent host."""
    lines = []
    for i in range(count):
        envelope = sandbox.sns.notification(
            alarm_message(name=f"{team(1)}-slow-cert-{i}", state="ALARM"), topic_arn=TOPIC_ARN
        )
        envelope["SigningCertURL"] = f"https://127.0.0.1:{silent.port}/slow-{uuid.uuid4().hex}.pem"
        lines.append(
            {
                "path": "/sns",
                "headers": {
                    "Content-Type": "text/plain; charset=UTF-8",
                    "x-amz-sns-topic-arn": TOPIC_ARN,
                },
                "body": sns_body(envelope).decode(),
            }
        )
    return lines


def _siege(
    ctx: Context,
    sandbox: Sandbox,
    service: Service,
    silent: SilentHost,
    settings: EdgeSettings,
    number: int,
) -> dict[str, Any]:
    label = f"edge-siege-{number}"
    requests_file = ctx.run_dir / f"{label}-requests.jsonl"
    requests = _slow_cert_requests(sandbox, silent, settings.slow_certs)
    requests_file.write_text("\n".join(json.dumps(r) for r in requests) + "\n")
    out = ctx.run_dir / f"{label}.json"
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "siege",
        "--url",
        service.url,
        "--requests",
        str(requests_file),
        "--half-sent",
        str(settings.half_sent),
        "--hold-s",
        str(settings.page_timeout_s),
        "--out",
        str(out),
    ]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as siege:
        assert siege.stdout is not None
        ready = siege.stdout.readline().strip() == "ready"
        page_s, status = (
            time_to_page(
                sandbox, service, f"{team(1)}-under-siege-{number}", settings.page_timeout_s
            )
            if ready
            else (None, None)
        )
        # The siege ends when the server has answered (or closed) every request of it,
        # so that the next round starts on an idle service.
        siege.wait(settings.page_timeout_s * 2)
    result = dict(json.loads(out.read_text())) if out.exists() else {}
    return {"page_s": page_s, "alarm_status": status, **result}


def run(ctx: Context, settings: EdgeSettings) -> dict[str, Any]:
    with Sandbox(ctx.ca, teams=1) as sandbox, SilentHost() as silent:
        database_url = ctx.databases.create("edge")
        signer_port = sandbox.sns.server.port
        pattern = rf"^https://127\.0\.0\.1:({signer_port}|{silent.port})/"
        service = start_opsbot(
            sandbox,
            database_url=database_url,
            config=opsbot_config(1, reopen_window_s=300),
            run_dir=ctx.run_dir,
            label="edge",
            settle_s=1.0 if ctx.quick else 3.0,
            extra_env={"OPSBOT_SNS_CERT_URL_PATTERN": pattern},
        )
        ctx.record_start(service, what="edge", database="fresh")
        try:
            uploads = {}
            for path, headers in ROUTES.items():
                ctx.say(f"edge: {settings.parallel} uploads of {settings.upload_mb} MB to {path}")
                uploads[path] = _uploads(ctx, service, settings, path, headers)
            alone: list[float | None] = []
            besieged: list[dict[str, Any]] = []
            for number in range(1, settings.rounds + 1):
                ctx.say(f"edge: round {number}/{settings.rounds}, a genuine alarm alone")
                page_s, _status = time_to_page(
                    sandbox, service, f"{team(1)}-alone-{number}", settings.page_timeout_s
                )
                alone.append(page_s)
                ctx.say(
                    f"edge: round {number}/{settings.rounds}, a genuine alarm behind "
                    f"{settings.slow_certs} slow-certificate messages and "
                    f"{settings.half_sent} half-sent requests"
                )
                besieged.append(_siege(ctx, sandbox, service, silent, settings, number))
            if service.process.poll() is not None:
                raise RuntimeError(
                    "opsbot exited during the edge benchmark:\n" + service.log_tail()
                )
        finally:
            service.stop()
    return {
        "settings": asdict(settings),
        "idle_rss_mb": service.idle_rss_mb,
        "uploads": uploads,
        "page_alone_s": alone,
        "page_besieged": besieged,
    }


def summary(edge: dict[str, Any]) -> dict[str, Any]:
    idle = edge["idle_rss_mb"]
    peaks = [u["peak_rss_mb"] for u in edge["uploads"].values() if u["peak_rss_mb"] is not None]
    alone = [s for s in edge["page_alone_s"] if s is not None]
    besieged = [r["page_s"] for r in edge["page_besieged"]]
    paged = [s for s in besieged if s is not None]
    alone_s = statistics.median(alone) if alone else None
    besieged_s = statistics.median(paged) if paged and len(paged) == len(besieged) else None
    return {
        "idle_rss_mb": idle,
        "peak_rss_mb": max(peaks) if peaks else None,
        "peak_over_idle_mb": max(peaks) - idle if peaks and idle is not None else None,
        "page_alone_s": alone_s,
        "page_besieged_s": besieged_s,
        "pages_missed_under_siege": len(besieged) - len(paged),
        "page_delay_s": None if alone_s is None or besieged_s is None else besieged_s - alone_s,
    }
