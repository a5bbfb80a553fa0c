"""`python -m bench [all|ack|storm|footprint|edge] [--quick] ...`: run, print, write files."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import ack, click, edge, footprint, report, storm
from bench.context import Context
from bench.machine import describe, load_average
from bench.sandbox import Databases
from sandbox.tls import make_test_ca

RESULTS = Path(__file__).parent / "results"
CHOICES = ("all", "ack", "storm", "footprint", "edge", "ack-styles", "click")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m bench",
        description="opsbot benchmarks: acknowledgement latency, an alarm storm against "
        "Alertmanager, footprint, the HTTP edge under attack, a click's effect against a plain "
        "Bolt app. See docs/benchmarks.md.",
    )
    root.add_argument("benchmark", nargs="?", choices=CHOICES, default="all")
    root.add_argument(
        "--quick", action="store_true", help="a small, fast run (CI smoke): numbers mean little"
    )
    root.add_argument(
        "--alertmanager",
        choices=("install", "installed", "skip"),
        default="install",
        help="install Debian's prometheus-alertmanager when missing (default), use it only "
        "if installed, or skip the Alertmanager column",
    )
    root.add_argument("--out", type=Path, default=RESULTS, help="where JSON and PNG go")
    root.add_argument("--rounds", type=int, help="acknowledgement runs per server")
    root.add_argument("--storm-runs", type=int, help="storm runs")
    root.add_argument("--notifications", type=int, help="storm size")
    root.add_argument("--alarms", type=int, help="distinct alarms in the storm")
    root.add_argument("--teams", type=int, help="teams: Slack channels and routing keys")
    root.add_argument("--window", type=int, help="opsbot reopen window = AM group_interval, s")
    root.add_argument(
        "--intake-only",
        action="store_true",
        help="storm: measure the intake (and the first page) only, not the drain",
    )
    root.add_argument(
        "--keep", action="store_true", help="keep the processes' logs and configuration"
    )
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # `ack-styles` (issue 19.2: where the ack is made) runs only when asked for.
    selected = set(CHOICES[1:]) - {"ack-styles"} if args.benchmark == "all" else {args.benchmark}
    admin_url = os.environ.get("TEST_DATABASE_URL") or None
    run_dir = Path(tempfile.mkdtemp(prefix="opsbot-bench-"))
    started = datetime.now(UTC)
    results: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "benchmarks": sorted(selected),
        "machine": describe(),
        "database": "PostgreSQL" if admin_url else "SQLite (TEST_DATABASE_URL not set)",
    }
    print(f"opsbot benchmarks: {', '.join(sorted(selected))}{' (quick)' if args.quick else ''}")
    if not admin_url:
        print("  · TEST_DATABASE_URL is not set: opsbot runs on SQLite (production is PostgreSQL)")
    ctx = Context(
        quick=args.quick,
        run_dir=run_dir,
        ca=make_test_ca(run_dir / "ca"),
        databases=Databases(admin_url, run_dir),
    )
    began = time.monotonic()
    failed: dict[str, str] = {}

    def attempt(name: str, run: Callable[[], Any]) -> None:
        """Run one benchmark; a failure is reported and the others still run."""
        try:
            results[name] = run()
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            ctx.say(f"{name}: FAILED ({failed[name]}); going on with the others")

    try:
        if "footprint" in selected:
            attempt("footprint", lambda: footprint.run(ctx))
        if "ack" in selected:
            rounds_settings = ack.AckSettings.for_mode(args.quick)
            if args.rounds:
                rounds_settings = ack.AckSettings(
                    **{**rounds_settings.__dict__, "rounds": args.rounds}
                )
            attempt("ack", lambda: ack.run(ctx, rounds_settings))
        if "ack-styles" in selected:
            style_settings = ack.AckSettings.for_mode(args.quick)
            if args.rounds:
                style_settings = ack.AckSettings(
                    **{**style_settings.__dict__, "rounds": args.rounds}
                )
            results["ack_styles"] = ack.run_styles(ctx, style_settings)
            print(json.dumps(results["ack_styles"]["summary"], indent=1))
        if "storm" in selected:
            settings = storm.StormSettings.for_mode(
                args.quick,
                runs=args.storm_runs,
                notifications=args.notifications,
                alarms=args.alarms,
                teams=args.teams,
                reopen_window_s=args.window,
                intake_only=args.intake_only or None,
            )
            mode = {"install": "install", "installed": "installed", "skip": "skip"}[
                args.alertmanager
            ]
            attempt("storm", lambda: storm.run(ctx, settings, alertmanager_mode=mode))
        if "edge" in selected:
            attempt("edge", lambda: edge.run(ctx, edge.EdgeSettings.for_mode(args.quick)))
        if "click" in selected:
            attempt("click", lambda: click.run(ctx, click.ClickSettings.for_mode(args.quick)))
    finally:
        ctx.databases.drop_all()
        if args.keep:
            print(f"  · logs and configuration kept in {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    results["failed"] = failed
    results["starts"] = ctx.starts
    results["notes"] = ctx.log
    results["took_s"] = time.monotonic() - began
    results["machine"]["load_average_at_end"] = load_average()
    report.summarise(results)

    print()
    print(report.table(results))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.benchmark + ("-quick" if args.quick else "")
    report.write_json(results, args.out / f"{stem}.json")
    why_not = report.chart(results, args.out / f"{stem}.png")
    print()
    print(f"written: {args.out / f'{stem}.json'}")
    print(why_not or f"written: {args.out / f'{stem}.png'}")
    for name, why in failed.items():
        print(f"{name}: FAILED: {why}")
    return 1 if failed else 0
