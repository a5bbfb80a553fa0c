"""Item 3: footprint. Time from process start to `/readyz` 200, and resident memory idle.

Every start of opsbot in a run counts (the storm and the acknowledgement
benchmark start it too); this benchmark adds starts of its own: on a fresh
database (migrations run at start) and again on the same, now migrated,
database (a restart, as when ECS replaces a task), and one start each of the
bare and the plain Bolt apps (`bench/bare_app.py`, `bench/plain_app.py`), the
peers opsbot's idle memory is read against. Memory after the storm comes from
the storm benchmark.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from bench.ack import _start_bare
from bench.click import start_plain
from bench.context import Context
from bench.sandbox import Sandbox, opsbot_config, start_opsbot


def run(ctx: Context) -> dict[str, Any]:
    # --quick adds no starts of its own: those of the other benchmarks count.
    starts = 0 if ctx.quick else 3
    with Sandbox(ctx.ca, teams=1) as sandbox:
        config = opsbot_config(1, reopen_window_s=300)
        for number in range(1, starts + 1):
            database_url = ctx.databases.create("footprint")
            for database in ("fresh", "migrated"):
                label = f"footprint-{database}-{number}"
                ctx.say(f"footprint: start {number}/{starts} on a {database} database")
                service = start_opsbot(
                    sandbox,
                    database_url=database_url,
                    config=config,
                    run_dir=ctx.run_dir,
                    label=label,
                    settle_s=1.0 if ctx.quick else 3.0,
                )
                ctx.record_start(service, what="footprint", database=database)
                service.stop()
        if starts:
            # Read after the same settling as the bare app's (2 s in a full run).
            for start_peer in (_start_bare, partial(start_plain, settle_s=2.0)):
                ctx.say("footprint: a start of a peer Bolt app")
                peer = start_peer(sandbox, ctx)
                ctx.record_start(peer, what="footprint", database="none")
                peer.stop()
    return {"starts": starts}
