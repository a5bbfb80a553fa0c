"""The verdicts the benchmark prints: a lost click, a failed answer or a refused request
kind is never hidden behind a ratio, and a run cut short is not judged on what it skipped.

The figures are made up or taken from the committed full run (bench/results/all.json);
no time is measured.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from bench import ack, click, report, storm
from bench.procs import spawn_on_free_port
from bench.sandbox import BOT_TOKEN, SIGNING_SECRET
from bench.stats import percentile
from sandbox.environment import clean_environment
from sandbox.slack import SlackEmulator

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results" / "all.json"


def _full_run() -> dict[str, Any]:
    return dict(json.loads(RESULTS.read_text()))


# -- 1. clicks ---------------------------------------------------------------------------


def _side(clicks: int, landed_s: list[float]) -> dict[str, Any]:
    """One server's side of a click case, as `click._case` records it."""
    return {
        "clicks": clicks,
        "landed": len(landed_s),
        "lost": clicks - len(landed_s),
        "effect_s": landed_s,
        "p50_s": percentile(landed_s, 50) if landed_s else None,
        "p99_s": percentile(landed_s, 99) if landed_s else None,
        "max_s": max(landed_s) if landed_s else None,
        "slack_429s": {},
    }


def _click_targets(cases: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = click.targets(
        {"settings": {"clicks": 20, "flood": 200, "storm": 100, "many": 100}, "cases": cases}
    )
    return {item["target"]: item for item in found}


def test_clicks_opsbot_lost_are_missed_whatever_the_plain_app_did() -> None:
    found = _click_targets(
        {
            # Every opsbot click lost: no p99 of opsbot's at all.
            "clicks": {"opsbot": _side(20, []), "plain": _side(20, [0.3] * 20)},
            # One opsbot click lost while the plain app lost every one: no ratio.
            "flood": {"opsbot": _side(20, [0.2] * 19), "plain": _side(20, [])},
            # The one click in the storm never took effect.
            "storm": {"opsbot": _side(1, []), "plain": _side(1, [0.3]), "storm": 100},
            "many": {"opsbot": _side(100, [0.5] * 100), "plain": _side(100, [0.5] * 50)},
        }
    )

    lost = [item for target, item in found.items() if "100 simultaneous" not in target]
    assert len(lost) == 3
    for item in lost:
        assert item["met"] is False, item
        assert "opsbot lost" in item["figure"]


def test_clicks_all_landed_against_a_plain_app_that_lost_all_are_not_evaluated() -> None:
    found = _click_targets(
        {
            "clicks": {"opsbot": _side(20, [0.3] * 20), "plain": _side(20, [])},
            "flood": {"opsbot": _side(20, [0.3] * 20), "plain": _side(20, [0.3] * 20)},
            "storm": {"opsbot": _side(1, [0.3]), "plain": _side(1, [0.3]), "storm": 100},
            "many": {"opsbot": _side(100, [0.5] * 100), "plain": _side(100, [0.5] * 50)},
        }
    )

    assert [item["met"] for item in found.values()] == [None, True, True, True]


# -- 2. ack errors, intake statuses ------------------------------------------------------


def _ack_round(p99_ms: float, errors: int) -> dict[str, Any]:
    return {
        "kinds": {
            ack.ALL: {"p50_ms": p99_ms, "p95_ms": p99_ms, "p99_ms": p99_ms, "max_ms": p99_ms}
        },
        "throughput_rps": 1000.0,
        "server_cpu_ms_per_request": 1.0,
        "loadgen_cpu_ms_per_request": 0.2,
        "errors": errors,
        "work_behind": {"answers": 0, "last_answer_s": None},
    }


def test_fast_failed_acks_are_missed_and_the_errors_named() -> None:
    rounds = [{"opsbot": _ack_round(10.0, errors=3000), "bare": _ack_round(100.0, errors=0)}]
    summary = ack._summarise(rounds, [ack.ALL])

    [item] = [t for t in report.targets({"ack": {"summary": summary}}) if "ack p99" in t["target"]]

    assert item["met"] is False
    assert "errors" in item["figure"] and "3000" in item["figure"]


def test_acks_all_answered_within_the_ratio_are_met() -> None:
    rounds = [{"opsbot": _ack_round(110.0, errors=0), "bare": _ack_round(100.0, errors=0)}]
    summary = ack._summarise(rounds, [ack.ALL])

    [item] = [t for t in report.targets({"ack": {"summary": summary}}) if "ack p99" in t["target"]]

    assert item["met"] is True


def test_intake_rate_counts_only_notifications_answered_2xx() -> None:
    load = {
        "sent": 2003,
        "started": 100.0,
        "finished": 101.0,
        "statuses": {"503": 1500, "200": 500, "403": 2, "ConnectError": 1},
        "resends": 7500,
        "latencies_ms": [5.0] * 2003,
        "done_at": [],
    }

    intake = storm._intake(load)

    assert intake["intake_rate_per_s"] == 500.0
    assert intake["answered_2xx"] == 500
    assert intake["not_2xx"] == 1503


def test_a_notification_left_unanswered_2xx_misses_the_intake_target_and_is_printed() -> None:
    results = _full_run()
    run = results["storm"]["runs"][1]["opsbot"]
    run["intake"]["statuses"] = {"200": 1997, "503": 3}
    results["storm"]["summary"] = report.storm_summary(results["storm"])

    [item] = [t for t in report.targets(results) if t["target"].startswith("intake")]
    assert item["met"] is False
    assert "not answered 2xx after resends: 3" in item["figure"]

    [row] = [line for line in report._storm_table(results["storm"]) if "not answered 2xx" in line]
    assert "0, 3, 0" in row


def test_the_committed_run_still_meets_the_intake_target() -> None:
    results = _full_run()
    results["storm"]["summary"] = report.storm_summary(results["storm"])

    [item] = [t for t in report.targets(results) if t["target"].startswith("intake")]

    assert item["met"] is True


# -- 5. --intake-only --------------------------------------------------------------------

DRAIN_DEPENDENT = (
    "exactly one PagerDuty incident",
    "Slack quiet again",
    "peak RSS under",
    "peak RSS during the storm",
)


def test_intake_only_leaves_the_targets_of_the_drain_not_evaluated() -> None:
    results = _full_run()
    full = copy.deepcopy(results)
    results["storm"]["settings"]["intake_only"] = True
    for summarised in (results, full):
        report.summarise(summarised)

    cut = {t["target"]: t for t in results["targets"]}
    whole = {t["target"]: t for t in full["targets"]}

    assert cut.keys() == whole.keys()
    for target, item in cut.items():
        if target.startswith(DRAIN_DEPENDENT):
            assert item["met"] is None, target
            assert "--intake-only" in item["figure"]
        else:
            assert item["met"] == whole[target]["met"], target
    assert sum(target.startswith(DRAIN_DEPENDENT) for target in cut) == len(DRAIN_DEPENDENT)
    assert "NOT EVALUATED" in report.table(results)


def test_intake_only_still_misses_a_peak_already_over_its_target() -> None:
    results = _full_run()
    results["storm"]["settings"]["intake_only"] = True
    results["ack"]["opsbot_peak_rss_mb"] = 10 * report.PEAK_RSS_TARGET_MB
    report.summarise(results)
    [peak] = [t for t in results["targets"] if t["target"].startswith("peak RSS under")]
    assert peak["met"] is False


# -- 3. the ack probe --------------------------------------------------------------------


class _FakeOpsbot(BaseHTTPRequestHandler):
    """Answers /opsbot help with 200, Acknowledge with `acknowledge`, and 404 to the rest."""

    acknowledge = 500

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        form = parse_qs(body)
        if "command" in form:
            status = 200
        elif "incident_acknowledge" in form.get("payload", [""])[0]:
            status = self.acknowledge
        else:
            status = 404
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def fake_opsbot() -> Iterator[tuple[str, type[_FakeOpsbot]]]:
    handler = type("Handler", (_FakeOpsbot,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def bare_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The benchmark's bare Bolt app, with the Slack emulator it asks who it is."""
    slack = SlackEmulator(token=BOT_TOKEN).start()
    env = clean_environment(
        {
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_API_URL": slack.api_url,
        }
    )
    service = spawn_on_free_port(
        "bare-bolt",
        lambda port: [sys.executable, "-m", "bench.bare_app", "--port", str(port)],
        env=env,
        ready_path="/readyz",
        log_path=tmp_path_factory.mktemp("bare") / "bare.log",
    )
    yield service.url
    service.stop()
    slack.stop()


@pytest.mark.parametrize("status", [500, 401, 400])
def test_a_kind_opsbot_refuses_otherwise_than_404_fails_the_benchmark(
    fake_opsbot: tuple[str, type[_FakeOpsbot]], bare_url: str, status: int
) -> None:
    url, handler = fake_opsbot
    handler.acknowledge = status
    said: list[str] = []

    with pytest.raises(RuntimeError, match=f"opsbot answered {status} to button Acknowledge"):
        ack.sort_kinds(url, bare_url, "http://127.0.0.1:9/response", say=said.append)


def test_a_kind_opsbot_has_no_listener_for_is_skipped_saying_so(
    fake_opsbot: tuple[str, type[_FakeOpsbot]], bare_url: str
) -> None:
    url, handler = fake_opsbot
    handler.acknowledge = 200
    said: list[str] = []

    measured, skipped = ack.sort_kinds(
        url, bare_url, "http://127.0.0.1:9/response", say=said.append
    )

    assert [k.name for k in measured] == ["slash /opsbot help", "button Acknowledge"]
    assert list(skipped) == ["button Resolve"]
    assert "404" in skipped["button Resolve"] and len(said) == 1


# -- 4. make bench -----------------------------------------------------------------------


def test_make_bench_fails_when_the_private_cluster_cannot_start(tmp_path: Path) -> None:
    # A stand-in for the venv's python that records that it ran, and with what URL.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ran = tmp_path / "ran"
    fake = bin_dir / "python"
    fake.write_text(f'#!/bin/sh\nprintf "%s" "$TEST_DATABASE_URL" > {ran}\n')
    fake.chmod(0o755)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TEST_DATABASE_URL", "PG_BINDIR", "OPSBOT_PG_DIR", "OPSBOT_PG_USER")
        and not k.startswith("MAKE")
    }
    env |= {"PG_BINDIR": str(tmp_path / "no-postgres"), "OPSBOT_PG_DIR": str(tmp_path / "pg")}

    result = subprocess.run(
        # -o: the stamp is taken as made, so nothing is installed.
        ["make", "--no-print-directory", "-o", ".venv/.bench-installed", "bench", f"BIN={bin_dir}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode != 0, result.stdout + result.stderr
    assert "PG_BINDIR" in result.stderr
    assert not ran.exists(), f"the benchmark ran with TEST_DATABASE_URL={ran.read_text()!r}"
