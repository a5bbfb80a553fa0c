"""What every benchmark of one run shares: the test CA, databases, a folder, the starts seen."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import Service
from bench.sandbox import Databases
from sandbox.tls import TestCA


@dataclass
class Context:
    quick: bool
    run_dir: Path  # logs and configuration of the processes under test
    ca: TestCA
    databases: Databases
    starts: list[dict[str, Any]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def record_start(self, service: Service, *, what: str, database: str) -> None:
        """Every start of a process under test adds to the footprint figures."""
        self.starts.append(
            {
                "process": service.name,
                "what": what,
                "database": database,  # fresh (migrations run at start) | migrated
                "ready_s": service.ready_s,
                "idle_rss_mb": service.idle_rss_mb,
            }
        )

    def say(self, text: str) -> None:
        print(f"  · {text}", flush=True)
        self.log.append(text)
