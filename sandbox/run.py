"""`opsbot dev` (`make run`): the real service, with everything it talks to emulated on loopback.

The product's CLI (`bot/cli.py`) hands `opsbot dev` here when the checkout has this
package; the image does not, so production never loads the emulators.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from bot.app import build_runtime, create_app
from bot.cli import EXIT_BAD_CONFIG, _settings, configure_logs, run_server
from bot.db.migrate import upgrade
from bot.observability.exporter import MetricsServer, serve_metrics
from bot.settings import Settings
from sandbox import console_routes, history, world
from sandbox.console import ConsoleActions
from sandbox.dev import Sandbox
from sandbox.server import free_port

# Written into --var-dir at each start: only a directory bearing it is emptied by the next.
VAR_DIR_MARKER = ".opsbot-sandbox"
# The default --var-dir, only ever the sandbox's: what a start wrote there before the
# marker existed (its database, its test CA) is the sandbox's too. Elsewhere the same
# files may be `opsbot serve`'s own (its var/ holds an opsbot.db).
DEFAULT_VAR_DIR = Path("var") / "sandbox"
_EARLIER_SANDBOX = {"opsbot.db", "opsbot.db-wal", "opsbot.db-shm", "opsbot.db-journal", "tls"}


def run_dev(args: argparse.Namespace) -> int:
    """`opsbot dev`: the real service, with everything it talks to emulated on loopback."""
    exporter: MetricsServer | None = None
    host = args.host
    level = str(args.log_level).upper()
    port = args.port if args.port else free_port()
    var_dir = Path(args.var_dir).expanduser()
    try:
        renew_var_dir(var_dir, default=Path(args.var_dir) == DEFAULT_VAR_DIR)
    except VarDirRefused as exc:
        print(f"opsbot dev: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    service_url = f"http://127.0.0.1:{port}"
    sandbox = Sandbox(var_dir=var_dir, service_url=service_url, rollout_s=args.rollout_s)
    configure_logs(_settings(), [*vars(sandbox.secrets).values()], level)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server
    print("opsbot dev: starting the sandbox (Slack, PagerDuty, SNS and AWS on loopback)…")
    sandbox.start()
    console: ConsoleActions | None = None
    try:
        settings = sandbox.settings(port=port, host=host, log_level=level)
        config = sandbox.config()
        upgrade(settings.effective_database_url, timeouts=settings.db_timeouts)
        runtime = build_runtime(settings, config)
        history.seed(runtime, sandbox.client)  # the first prod alarm lists recent changes
        # Metrics on a port of their own, as in production: any free one on loopback.
        exporter = serve_metrics(runtime.metrics.registry, host="127.0.0.1", port=0)
        runtime.metrics_url = exporter.url
        console = ConsoleActions(sandbox)
        app = create_app(runtime, extra_routes=console_routes.routes(runtime, console))
        _print_sandbox(settings, sandbox, host=host, port=port, metrics_url=exporter.url)
        run_server(app, settings, host=host, port=port, access_log=args.access_log)
    finally:
        if exporter is not None:
            exporter.stop()
        if console is not None:
            console.close()
        sandbox.stop()
    return 0


class VarDirRefused(Exception):
    """A --var-dir that holds something the sandbox did not put there."""


def renew_var_dir(var_dir: Path, *, default: bool = False) -> None:
    """Empty `var_dir` for a new start, and mark it as the sandbox's own.

    The emulated world lives in memory and starts anew each time, so the database
    that remembers it does too. Only a directory that is new, empty, marked by an
    earlier start, or (`default`: the default --var-dir) holding only what a start
    writes (its database and test CA) is emptied: `--var-dir .`, `~` or `var` (where
    `opsbot serve` keeps its database) is refused (VarDirRefused), not wiped.
    """
    if var_dir.exists() or var_dir.is_symlink():
        if not var_dir.is_dir():
            raise VarDirRefused(f"--var-dir {var_dir} is not a directory; nothing was changed")
        names = {child.name for child in var_dir.iterdir()}
        earlier = default and names <= _EARLIER_SANDBOX
        if names and VAR_DIR_MARKER not in names and not earlier:
            raise VarDirRefused(
                f"--var-dir {var_dir} holds files the sandbox did not write (it has no "
                f"{VAR_DIR_MARKER}), and each start empties it: nothing was changed. Name a "
                "new or empty directory; if this is an earlier sandbox's, from before the "
                f"marker, remove it yourself (rm -r {var_dir})."
            )
        for child in var_dir.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    var_dir.mkdir(parents=True, exist_ok=True)
    (var_dir / VAR_DIR_MARKER).write_text(
        "opsbot dev keeps its database and test CA here and empties this directory at each "
        "start.\n",
        encoding="utf-8",
    )


def _print_sandbox(
    settings: Settings, sandbox: Any, *, host: str, port: int, metrics_url: str
) -> None:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "127.0.0.1") else host  # noqa: S104
    lines = ["", "opsbot dev: every setting, pointed at the sandbox (secrets masked):"]
    rows = settings.described()
    width = max(len(name) for name, _ in rows)
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    lines += [
        f"  {'moto (behind AWS_ENDPOINT_URL)':<{width}}  {sandbox.moto_url}",
        "",
        "Demo world: app `checkout`, `prod` (protected) and `staging`; images "
        + ", ".join(t for i in sandbox_images() for t in i),
        "People: " + "; ".join(f"{u.real_name} ({u.slack_id}): {u.role}" for u in world.USERS),
        "",
        f"  Console: http://{shown}:{port}/",
        f"  Metrics: {metrics_url}",
        "",
    ]
    if host not in ("127.0.0.1", "localhost", "::1"):
        lines.append(
            f"WARNING: listening on {host}: the console acts as anyone; "
            "keep it off shared networks."
        )
    print("\n".join(lines), flush=True)


def sandbox_images() -> list[tuple[str, ...]]:
    from sandbox.ecr import IMAGES

    return [i.tags for i in IMAGES]
