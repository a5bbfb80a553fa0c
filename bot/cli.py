"""`opsbot ...`: the command line."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.config import Config, ConfigError, load_config
from bot.log import configure_logging
from bot.settings import Settings
from bot.slack_text import unescape

# Longer than the load balancer's idle timeout (60 s, infra/modules/service/
# load-balancer.tf): a connection the ALB reuses must not be one we just closed
# (the ALB answers 502). uvicorn's default is 5 s.
KEEP_ALIVE_S = 75

log = logging.getLogger("opsbot")

EXIT_BAD_CONFIG = 2


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        print("invalid environment:", file=sys.stderr)
        for item in exc.errors():
            name = str(item["loc"][0]).upper() if item["loc"] else "(environment)"
            print(f"  {name}: {item['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIG) from None


def _config(settings: Settings, path: Path | None = None) -> Config:
    try:
        return load_config(path or settings.config_path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIG) from None


def _secrets(settings: Settings, config: Config) -> list[str]:
    values = settings.secret_values()
    for env_name in config.routing_key_envs():
        secret = settings.env_secret(env_name)
        if secret is not None:
            values.append(secret.get_secret_value())
    return values


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.app import build_runtime, create_app
    from bot.db.migrate import upgrade

    settings = _settings()
    config = _config(settings)
    configure_logging(settings.log_level, _secrets(settings, config))
    if not args.no_migrate:
        upgrade(settings.effective_database_url)
    runtime = build_runtime(settings, config)
    app = create_app(runtime)
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    log.info("opsbot listening on http://%s:%d", host, port)
    _freeze_startup_heap()
    _run_server(app, host=host, port=port, access_log=args.access_log)
    return 0


def _run_server(app: Any, *, host: str, port: int, access_log: bool) -> None:
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=access_log,
        timeout_keep_alive=KEEP_ALIVE_S,
    )


def _freeze_startup_heap() -> None:
    """Keep what the start-up loaded out of the garbage collector's full passes.

    boto3, the Slack and PagerDuty clients and SQLAlchemy leave ~130,000
    objects that live as long as the process. The first full collection after
    the start scanned them all (100-200 ms on a 2-core machine) in the middle of
    whatever allocated next: in the storm benchmark, the first alarm, delaying
    the first page. Frozen, they are never scanned again.
    """
    gc.collect()
    gc.freeze()


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def cmd_dev(args: argparse.Namespace) -> int:
    """The sandbox: the real service, with everything it talks to emulated on loopback."""
    import shutil

    try:
        from bot.sandbox.dev import Sandbox
    except ImportError as exc:  # pragma: no cover - a production image has no moto
        print(f"opsbot dev needs the dev extra (pip install -e '.[dev]'): {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    from bot.app import build_runtime, create_app
    from bot.db.migrate import upgrade
    from bot.sandbox.console import ConsoleActions

    host = args.host
    level = str(args.log_level).upper()
    port = args.port if args.port else _free_port("127.0.0.1")
    var_dir = Path(args.var_dir)
    # The emulated world lives in memory and starts anew each time, so the
    # database that remembers it does too.
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True, exist_ok=True)
    service_url = f"http://127.0.0.1:{port}"
    sandbox = Sandbox(var_dir=var_dir, service_url=service_url, rollout_s=args.rollout_s)
    configure_logging(level, [*vars(sandbox.secrets).values()])
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server
    print("opsbot dev: starting the sandbox (Slack, PagerDuty, SNS and AWS on loopback)…")
    sandbox.start()
    console = None
    try:
        settings = sandbox.settings(port=port, host=host, log_level=level)
        config = sandbox.config()
        upgrade(settings.effective_database_url)
        runtime = build_runtime(settings, config)
        console = ConsoleActions(sandbox)
        runtime.console = console
        app = create_app(runtime)
        _print_sandbox(settings, sandbox, host=host, port=port)
        _run_server(app, host=host, port=port, access_log=args.access_log)
    finally:
        if console is not None:
            console.close()
        sandbox.stop()
    return 0


def _print_sandbox(settings: Settings, sandbox: Any, *, host: str, port: int) -> None:
    from bot.sandbox import world

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
        "",
    ]
    if host not in ("127.0.0.1", "localhost", "::1"):
        lines.append(
            f"WARNING: listening on {host}: the console acts as anyone; "
            "keep it off shared networks."
        )
    print("\n".join(lines), flush=True)


def sandbox_images() -> list[tuple[str, ...]]:
    from bot.sandbox.ecr import IMAGES

    return [i.tags for i in IMAGES]


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    from bot.db.migrate import upgrade

    settings = _settings()
    configure_logging(settings.log_level, settings.secret_values())
    upgrade(settings.effective_database_url)
    print("database is up to date")
    return 0


def _app_notes(config: Config) -> list[str]:
    """Environments that validate but cannot work as someone would expect."""
    notes = []
    for name, app in sorted(config.apps.items()):
        for env, target in sorted(app.environments.items()):
            where = f"apps.{name}.environments.{env}"
            if target.deployers.is_empty:
                notes.append(f"{where} has no deployers: nobody may deploy it")
            if (target.protected or target.require_approval) and not target.release_channel:
                notes.append(
                    f"{where} needs confirmations but has no release_channel: they go where "
                    "/deploy was typed, and the CLI cannot deploy it"
                )
    return notes


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings()
    path = Path(args.path) if args.path else settings.config_path
    config = _config(settings, path)
    missing = sorted(e for e in config.routing_key_envs() if settings.env_secret(e) is None)
    source = str(path) if path else "embedded default configuration"
    environments = sum(len(app.environments) for app in config.apps.values())
    print(
        f"{source}: valid ({len(config.alarm_routes)} alarm routes, {len(config.apps)} apps "
        f"with {environments} environments)"
    )
    for note in _app_notes(config):
        print(f"note: {note}")
    for env_name in missing:
        print(f"note: {env_name} is not set here; routes naming it cannot page until it is")
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    from bot.clock import SystemClock
    from bot.db.engine import make_engine, make_sessionmaker
    from bot.outbox import service as outbox

    settings = _settings()
    engine = make_engine(settings.effective_database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as db_session:
        if args.outbox_command == "retry":
            count = outbox.retry_dead(db_session, now=SystemClock().now(), delivery_id=args.id)
            db_session.commit()
            print(f"{count} abandoned deliveries are pending again (a running opsbot sends them)")
        else:
            for kind, status, count in outbox.summary(db_session):
                print(f"{kind:18} {status:10} {count}")
            for row in outbox.dead(db_session, limit=20):
                print(f"dead #{row.id} {row.kind} to {row.target}: {row.last_error}")
    engine.dispose()
    return 0


def cmd_manifest(args: argparse.Namespace) -> int:
    import yaml

    from bot.manifest import build_manifest

    try:
        manifest = build_manifest(args.url)
    except ValueError as exc:
        print(f"--url: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    print(yaml.safe_dump(manifest, sort_keys=False, width=100), end="")
    return 0


def _plain(text: str) -> str:
    """Slack markup, as a terminal should show it (entities back to their characters)."""
    return unescape(text.replace("`", "").replace("*", ""))


def cmd_deploy(args: argparse.Namespace) -> int:
    from bot.app import build_runtime
    from bot.deploys.cli import run_deploy

    settings = _settings()
    config = _config(settings)
    configure_logging(settings.log_level, _secrets(settings, config))
    runtime = build_runtime(settings, config, run_jobs=False)
    # Started only to write the watch job into the shared job store: the
    # serving bot's leader runs it (and sends the Slack messages).
    runtime.scheduler.start(runtime)
    try:
        return run_deploy(
            runtime,
            app=args.app,
            env=args.env,
            tag=args.tag,
            actor=f"cli:{args.actor or settings.cli_user}",
            force_reason=args.force,
            wait=args.wait,
            timeout_s=args.timeout_min * 60,
            say=lambda line: print(_plain(line), flush=True),
        )
    finally:
        runtime.scheduler.stop()
        runtime.engine.dispose()


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="opsbot", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="interface to listen on (default: HOST or 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port to listen on (default: PORT or 3000)")
    serve.add_argument(
        "--no-migrate", action="store_true", help="do not apply database migrations at start"
    )
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request")
    serve.set_defaults(func=cmd_serve)

    dev = commands.add_parser(
        "dev",
        help="the sandbox: opsbot with Slack, PagerDuty and AWS emulated, and a web console",
    )
    dev.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)"
    )
    dev.add_argument(
        "--port", type=int, default=3000, help="port to listen on (default: 3000; 0: any free)"
    )
    dev.add_argument(
        "--var-dir",
        default=str(Path("var") / "sandbox"),
        help="where the sandbox keeps its database and test CA, recreated at each start "
        "(default: var/sandbox)",
    )
    dev.add_argument(
        "--rollout-s",
        type=float,
        default=8.0,
        help="how long an emulated ECS rollout takes (default: 8 seconds)",
    )
    dev.add_argument("--log-level", default="INFO", help="log level (default: INFO)")
    dev.add_argument("--access-log", action="store_true", help="log every HTTP request")
    dev.set_defaults(func=cmd_dev)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    db_commands.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)

    box = commands.add_parser("outbox", help="what is waiting to be sent, and what was abandoned")
    box_commands = box.add_subparsers(dest="outbox_command", required=True, metavar="COMMAND")
    box_commands.add_parser("status", help="counts by kind and status, and the latest failures")
    retry = box_commands.add_parser("retry", help="send abandoned deliveries again")
    retry.add_argument("--id", type=int, help="only this delivery (default: every abandoned one)")
    box.set_defaults(func=cmd_outbox)

    manifest = commands.add_parser("manifest", help="print the Slack app manifest")
    manifest.add_argument("--url", required=True, help="where opsbot is served: https://host")
    manifest.set_defaults(func=cmd_manifest)

    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("path", nargs="?", help="the file (default: OPSBOT_CONFIG or embedded)")
    check.set_defaults(func=cmd_check_config)

    deploy = commands.add_parser(
        "deploy",
        help="deploy an image tag from ECR to an app environment (the same path as /deploy)",
        description=(
            "Deploy <tag> of the app's ECR repository to <app> <env>, through the same checks "
            "as /deploy in Slack. Exit codes: 0 started (with --wait: completed), 1 failed, "
            "2 bad configuration, 3 refused, 4 rollout failed, 5 timed out."
        ),
    )
    deploy.add_argument("app")
    deploy.add_argument("env")
    deploy.add_argument("tag")
    deploy.add_argument(
        "--force", metavar="REASON", help="override a freeze, blocking scan findings... (audited)"
    )
    deploy.add_argument(
        "--wait", action="store_true", help="wait for the rollout to finish (and any confirmation)"
    )
    deploy.add_argument(
        "--timeout-min",
        type=float,
        default=30.0,
        help="how long --wait waits (default: 30 minutes)",
    )
    deploy.add_argument(
        "--actor", help="who is deploying (default: OPSBOT_ACTOR, GITHUB_ACTOR or the OS user)"
    )
    deploy.set_defaults(func=cmd_deploy)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
