"""The load generator: a separate process, so the server's numbers are not its own.

    python -m bench.loadgen ack --url URL --secret S --kinds NAME,... --out FILE
    python -m bench.loadgen storm --url URL --requests FILE --out FILE
    python -m bench.loadgen uploads --url URL --path P --parallel N --size BYTES --out FILE
    python -m bench.loadgen siege --url URL --requests FILE --half-sent N --out FILE

`ack` keeps `--concurrency` requests in flight (closed loop, one keep-alive
connection each), each signed at the moment it is sent; the first `--warmup`
requests open the connections and warm both sides and are not recorded.
`storm` sends prepared requests (a JSON line each: path, headers, body) as fast
as the server takes them, `--concurrency` at a time, and resends an answer of
5xx or a failed connection (as SNS would, but at once) up to five times.
`uploads` sends `--parallel` bodies of `--size` bytes at once (every other one
chunked, the rest with a Content-Length), each stopping when the server answers.
`siege` leaves `--half-sent` requests half-sent (half in their head, half in their
body) and sends every prepared request at once, prints "ready" when all are on
their way, and reports what the server did with each (bench/attack.py).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import attack
from bench.http1 import Connection, HttpError
from bench.request_kinds import kind_named
from sandbox.slack_requests import RequestSigner

RESEND_LIMIT = 5


async def _post(connection: Connection, path: str, body: str, headers: dict[str, str]) -> str:
    """The answer's status code, or the name of what failed."""
    try:
        status, _answer = await connection.post(path, body.encode(), headers)
    except HttpError as exc:
        return type(exc.__cause__ or exc).__name__
    return str(status)


async def ack(args: argparse.Namespace) -> dict[str, Any]:
    kinds = [kind_named(name) for name in args.kinds.split(",")]
    signer = RequestSigner(args.secret)
    latencies: dict[str, list[float]] = {kind.name: [] for kind in kinds}
    statuses: dict[str, Counter[str]] = {kind.name: Counter() for kind in kinds}
    sent: Counter[str] = Counter()  # warm-up included

    # One keep-alive connection per worker, kept from the warm-up to the end.
    connections = [Connection(args.url) for _ in range(args.concurrency)]

    async def phase(count: int, record: bool) -> float:
        numbers = itertools.count()

        async def worker(connection: Connection) -> None:
            while (i := next(numbers)) < count:
                k = i % len(kinds)
                # Every request unique, as Slack's are (opsbot refuses replays), with a
                # response_url of its own (Slack's work 5 times each).
                body = kinds[k].body(
                    f"{args.response_url}-{int(record)}-{i}", trigger_id=f"{record}.{i}.bench"
                )
                headers = signer.headers(body)
                sent[kinds[k].name] += 1
                started = time.perf_counter()
                status = await _post(connection, "/slack/events", body, headers)
                took_ms = (time.perf_counter() - started) * 1000
                if record:
                    latencies[kinds[k].name].append(round(took_ms, 3))
                    statuses[kinds[k].name][status] += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in connections))
        return time.perf_counter() - began

    try:
        await phase(args.warmup, record=False)
        duration_s = await phase(args.requests, record=True)
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    return {
        "concurrency": args.concurrency,
        "requests": args.requests,
        "warmup": args.warmup,
        "duration_s": duration_s,
        "latencies_ms": latencies,
        "statuses": {name: dict(counts) for name, counts in statuses.items()},
        "sent": dict(sent),
        "cpu_s": _cpu_s(),
    }


def _cpu_s() -> float:
    """The load generator's own CPU: it shares the machine with the server."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def storm(args: argparse.Namespace) -> dict[str, Any]:
    requests = [json.loads(line) for line in Path(args.requests).read_text().splitlines() if line]
    statuses: Counter[str] = Counter()
    done_at: list[float] = []
    latencies_ms: list[float] = []
    resends = 0

    numbers = itertools.count()

    async def worker(connection: Connection) -> None:
        nonlocal resends
        while (i := next(numbers)) < len(requests):
            request = requests[i]
            started = time.perf_counter()
            for attempt in range(RESEND_LIMIT + 1):
                status = await _post(
                    connection, request["path"], request["body"], request["headers"]
                )
                if status.isdigit() and int(status) < 500:
                    break
                if attempt < RESEND_LIMIT:
                    resends += 1
                    await asyncio.sleep(0.05)
            latencies_ms.append((time.perf_counter() - started) * 1000)
            statuses[status] += 1
            done_at.append(time.time())

    connections = [Connection(args.url) for _ in range(args.concurrency)]
    started = time.time()
    try:
        await asyncio.gather(*(worker(c) for c in connections))
    finally:
        finished = time.time()
        await asyncio.gather(*(c.close() for c in connections))
    return {
        "concurrency": args.concurrency,
        "sent": len(requests),
        "started": started,
        "finished": finished,
        "statuses": dict(statuses),
        "resends": resends,
        "done_at": sorted(done_at),
        "latencies_ms": latencies_ms,
    }


def _host_port(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").partition(":")
    return host, int(port.rstrip("/"))


async def uploads(args: argparse.Namespace) -> dict[str, Any]:
    host, port = _host_port(args.url)
    headers = json.loads(args.headers)
    began = time.perf_counter()
    answers = await asyncio.gather(
        *(
            attack.upload(
                host, port, args.path, size=args.size, chunked=i % 2 == 0, headers=headers
            )
            for i in range(args.parallel)
        ),
        return_exceptions=True,
    )
    took_s = time.perf_counter() - began
    done = [a for a in answers if isinstance(a, attack.Answer)]
    return {
        "path": args.path,
        "parallel": args.parallel,
        "size": args.size,
        "took_s": took_s,
        "statuses": dict(Counter(str(a.status) for a in done)),
        "failed": [repr(a) for a in answers if not isinstance(a, attack.Answer)],
        "sent_before_answer": sorted(a.sent for a in done),
        "closed": sum(a.closed for a in done),
    }


async def siege(args: argparse.Namespace) -> dict[str, Any]:
    host, port = _host_port(args.url)
    requests = [json.loads(line) for line in Path(args.requests).read_text().splitlines() if line]
    # Held as an attacker who knows the topic would: a request without it is refused
    # before its body is read, and would hold nothing.
    topic = next(
        (
            r["headers"]["x-amz-sns-topic-arn"]
            for r in requests
            if "x-amz-sns-topic-arn" in r["headers"]
        ),
        None,
    )
    headers = {"x-amz-sns-topic-arn": topic} if topic else {}
    half = [
        attack.HalfSent(host, port, "/sns", in_body=i % 2 == 1, headers=headers)
        for i in range(args.half_sent)
    ]
    await asyncio.gather(*(h.start() for h in half))
    connections = [Connection(args.url, timeout_s=args.hold_s) for _ in requests]
    posts = [
        asyncio.create_task(_post(c, r["path"], r["body"], r["headers"]))
        for c, r in zip(connections, requests, strict=True)
    ]
    await asyncio.sleep(0.2)  # the requests on their way, the half-sent ones waiting
    print("ready", flush=True)
    outcomes = await asyncio.gather(*(h.outcome(args.hold_s) for h in half))
    statuses = await asyncio.gather(*posts)
    await asyncio.gather(*(h.close() for h in half), *(c.close() for c in connections))
    return {
        "half_sent": args.half_sent,
        "half_sent_answers": dict(Counter(str(o.status) for o in outcomes)),
        "half_sent_closed_by_server": sum(o.closed for o in outcomes),
        "requests": len(requests),
        "request_statuses": dict(Counter(statuses)),
    }


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    one = commands.add_parser("ack", help="signed Slack requests, closed loop")
    one.add_argument("--url", required=True)
    one.add_argument("--secret", required=True)
    one.add_argument("--kinds", required=True, help="comma-separated names from KINDS")
    one.add_argument(
        "--response-url", required=True, help="a prefix: each request adds its own suffix"
    )
    one.add_argument("--concurrency", type=int, default=200)
    one.add_argument("--requests", type=int, default=4000)
    one.add_argument("--warmup", type=int, default=400)
    one.add_argument("--out", required=True)
    two = commands.add_parser("storm", help="prepared requests, as fast as they are taken")
    two.add_argument("--url", required=True)
    two.add_argument("--requests", required=True, help="a file of JSON lines: path, headers, body")
    two.add_argument("--concurrency", type=int, default=32)
    two.add_argument("--out", required=True)
    three = commands.add_parser("uploads", help="huge bodies at once, stopping when answered")
    three.add_argument("--url", required=True)
    three.add_argument("--path", required=True)
    three.add_argument("--headers", default="{}", help="JSON object of request headers")
    three.add_argument("--parallel", type=int, default=20)
    three.add_argument("--size", type=int, default=100_000_000)
    three.add_argument("--out", required=True)
    four = commands.add_parser("siege", help="half-sent requests and prepared ones, held")
    four.add_argument("--url", required=True)
    four.add_argument("--requests", required=True, help="a file of JSON lines: path, headers, body")
    four.add_argument("--half-sent", type=int, default=50)
    four.add_argument("--hold-s", type=float, default=300.0, help="the longest wait for answers")
    four.add_argument("--out", required=True)
    return root


def main() -> int:
    args = parser().parse_args()
    run = {"ack": ack, "storm": storm, "uploads": uploads, "siege": siege}[args.command]
    result = asyncio.run(run(args))
    Path(args.out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
