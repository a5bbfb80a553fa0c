"""Item 3: footprint. Time from process start to `/readyz` 200, and resident memory idle.

Every start of opsbot in a run counts (the storm and the acknowledgement
benchmark start it too); this benchmark adds starts of its own: on a fresh
database (migrations run at start) and again on the same, now migrated,
database (a restart, as when ECS replaces a task), and one start each of the
bare and the plain Bolt apps (`bench/bare_app.py`, `bench/plain_app.py`), the
peers opsbot's idle memory is read against. Memory after the storm comes from
the storm benchmark.

After each of its own starts, once its idle memory is read, one alarm is sent
and timed to its page: on a fresh database opsbot fetches the SNS signing
certificate first; on the restart it verifies with the one it kept
(`bot/sns/jobs.py`), as after a deploy.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from bench.ack import _start_bare
from bench.click import start_plain
from bench.context import Context
from bench.sandbox import Sandbox, opsbot_config, start_opsbot, time_to_page
from bot.sns.jobs import KEEP_AFTER_S

PAGE_TIMEOUT_S = 10.0


def run(ctx: Context) -> dict[str, Any]:
    # --quick adds no starts of its own: those of the other benchmarks count.
    starts = 0 if ctx.quick else 3
    pages: list[dict[str, Any]] = []  # the first alarm after each start, timed to its page
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
                page_s, _status = time_to_page(sandbox, service, f"team1-{label}", PAGE_TIMEOUT_S)
                pages.append({"database": database, "page_s": page_s})
                if database == "fresh":
                    time.sleep(KEEP_AFTER_S + 1.0)  # the certificate fetched is kept
                service.stop()
        if starts:
            # Read after the same settling as the bare app's (2 s in a full run).
            for start_peer in (_start_bare, partial(start_plain, settle_s=2.0)):
                ctx.say("footprint: a start of a peer Bolt app")
                peer = start_peer(sandbox, ctx)
                ctx.record_start(peer, what="footprint", database="none")
                peer.stop()
    return {"starts": starts, "pages": pages}
