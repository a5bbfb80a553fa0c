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
