"""What the numbers were taken on: CPU, cores, memory, Python, load, versions."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("slack-bolt", "slack-sdk", "uvicorn", "starlette", "sqlalchemy", "psycopg", "httpx")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_mib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        answer = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=Path(__file__).parent,
        )
    except OSError:
        return None
    return answer.stdout.strip() or None


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def describe() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_mib": _memory_mib(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(),
        "load_average_at_start": load_average(),
        "git_commit": _git_commit(),
        "packages": versions,
    }


def one_line(machine: dict[str, Any]) -> str:
    memory = machine.get("memory_mib")
    memory_text = f"{memory / 1024:.1f} GiB" if memory else "? GiB"
    load = machine.get("load_average_at_start") or []
    load_text = f", load {load[0]:.2f} at start" if load else ""
    return (
        f"{machine['cpu_model']}, {machine['cores']} cores, {memory_text}, "
        f"{machine['python']}{load_text}"
    )
