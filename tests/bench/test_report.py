"""The printed table says what each acknowledgement run gave, beside the medians."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench import report
from bench.ack import ALL

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "all.json"


def test_each_ack_run_is_printed_with_its_ratio_and_opsbot_cpu() -> None:
    ack = json.loads(RESULTS.read_text())["ack"]

    [line] = [row for row in report._ack_table(ack) if "each run" in row]

    runs = re.findall(r"(\d+\.\d\d)x \((\d+\.\d\d)\)", line)
    assert len(runs) == len(ack["rounds"]) > 1
    first = ack["rounds"][0]
    ratio = first["opsbot"]["kinds"][ALL]["p99_ms"] / first["bare"]["kinds"][ALL]["p99_ms"]
    assert runs[0] == (f"{ratio:.2f}", f"{first['opsbot']['server_cpu_ms_per_request']:.2f}")


def test_the_first_page_after_each_start_is_summed_up_by_database() -> None:
    pages = [
        {"database": "fresh", "page_s": 0.050},
        {"database": "migrated", "page_s": 0.044},
        {"database": "fresh", "page_s": 0.054},
        {"database": "migrated", "page_s": None},  # no page came: left out, not zero
        {"database": "migrated", "page_s": 0.048},
    ]
    summary = report.footprint_summary({"starts": [], "footprint": {"pages": pages}})

    lines = report._footprint_table(summary)

    [fresh] = [line for line in lines if "fresh database (s)" in line and "paged" in line]
    [kept] = [line for line in lines if "certificate kept" in line]
    assert "0.052 [0.050-0.054]" in fresh
    assert "0.046 [0.044-0.048]" in kept
