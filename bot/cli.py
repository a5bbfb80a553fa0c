"""`opsbot ...`: the command line."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bot import slack_dates
from bot.apps.claims import overlapping_globs
from bot.config import AppEnvironment, Config, ConfigError, load_config
from bot.log import configure_logging
from bot.settings import Settings
from bot.slack_text import unescape

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from bot.adapters.slack import KeptAliveWebClient
    from bot.ops.flows import Retried
    from bot.ops.preflight import Preflight
    from bot.rights.service import Rights

log = logging.getLogger("opsbot")

EXIT_BAD_CONFIG = 2
EXIT_MIGRATION_FAILED = 1
EXIT_REFUSED = 3  # a right said no, as `opsbot deploy`'s 3
# The start-up checks ask Slack a few questions; it has this long to answer each.
PREFLIGHT_TIMEOUT_S = 5.0


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
    for env_name in config.paging_key_envs():
        secret = settings.env_secret(env_name)
        if secret is not None:
            values.append(secret.get_secret_value())
    return values


def configure_logs(settings: Settings, secrets: list[str], level: str | None = None) -> None:
    configure_logging(
        level or settings.log_level, secrets, json_lines=settings.log_format == "json"
    )


def _slack_client(settings: Settings, *, timeout_s: float) -> KeptAliveWebClient | None:
    """A Slack client of the command's own (None without SLACK_BOT_TOKEN), not retrying."""
    from bot.adapters import slack, tls

    if settings.slack_bot_token is None:
        return None
    return slack.web_client(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        tls=tls.client_context(settings.ssl_cert_file),
        timeout_s=timeout_s,
        retries=False,
    )


def _preflight(settings: Settings, config: Config) -> Preflight:
    """The start-up checks (bot/ops/preflight.py), with a Slack client of their own."""
    from bot.ops.preflight import preflight

    client = _slack_client(settings, timeout_s=PREFLIGHT_TIMEOUT_S)
    try:
        return preflight(
            config,
            routing_key_set=lambda name: settings.env_secret(name) is not None,
            slack=client,
            pagerduty_api=settings.pagerduty_rest_enabled,
        )
    finally:
        if client is not None:
            client.close()


def _refuse_silence(settings: Settings, config: Config) -> Preflight:
    """Exit 2, naming each key, when the configuration would fail in silence."""
    checked = _preflight(settings, config)
    for warning in checked.warnings:
        log.warning("start-up check: %s", warning)
    if not checked.ok:
        print("refusing to start: this configuration would fail in silence:", file=sys.stderr)
        for refusal in checked.refusals:
            print(f"  {refusal}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIG)
    return checked


def _config_version(settings: Settings) -> str:
    from bot.config import config_digest

    if settings.config_version:
        return settings.config_version
    try:
        return config_digest(settings.config_path)
    except OSError:
        return "unknown"


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.app import build_runtime, create_app, make_metrics
    from bot.observability.exporter import MetricsPortUnavailable, serve_metrics

    settings = _settings()
    config = _config(settings)
    configure_logs(settings, _secrets(settings, config))
    checked = _refuse_silence(settings, config)
    metrics = make_metrics(settings, config, config_version=_config_version(settings))
    metrics_port = settings.metrics_port if args.metrics_port is None else args.metrics_port
    exporter = None
    if metrics_port is not None:
        try:
            exporter = serve_metrics(
                metrics.registry, host=settings.metrics_host, port=metrics_port
            )
        except MetricsPortUnavailable as exc:
            print(f"opsbot serve: {exc}", file=sys.stderr)
            return EXIT_BAD_CONFIG
    if not args.no_migrate:
        _migrate(settings)
    runtime = build_runtime(settings, config, metrics=metrics)
    if checked.slack_token_refused:
        metrics.slack_auth(False)
    if exporter is not None:
        runtime.metrics_url = exporter.url
    app = create_app(runtime)
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    log.info("opsbot listening on http://%s:%d", host, port)
    _freeze_startup_heap()
    try:
        run_server(app, settings, host=host, port=port, access_log=args.access_log)
    finally:
        if exporter is not None:
            exporter.stop()
    return 0


def _migrate(settings: Settings) -> None:
    """Bring the schema to its heads before serving; a failed migration stops the start.

    In this process rather than a child `opsbot db upgrade`: the child keeps
    Alembic out of memory but makes the first storm on a new database page later
    (docs/benchmarks.md, "Memory at idle").
    """
    from bot.db.migrate import upgrade

    try:
        upgrade(settings.effective_database_url, timeouts=settings.db_timeouts)
    except Exception:
        log.exception("the database migration failed")
        print(
            "opsbot serve: the database migration failed; the lines above say why",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_MIGRATION_FAILED) from None


def run_server(app: Any, settings: Settings, *, host: str, port: int, access_log: bool) -> None:
    """Serve until stopped, as `uvicorn.run` does, with `handlers.server`'s configuration."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from handlers.server import server_config

    server = uvicorn.Server(
        server_config(app, settings, host=host, port=port, access_log=access_log)
    )
    # uvicorn re-raises the interrupt once it has shut down: Ctrl-C is a clean stop.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)  # the port taken, the start-up failed, ...


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


def cmd_dev(args: argparse.Namespace) -> int:
    """The sandbox: the real service, with everything it talks to emulated on loopback."""
    try:
        # The sandbox is a package of the checkout, beside bot/: the image has none.
        from sandbox.run import run_dev
    except ImportError as exc:
        print(
            f"opsbot dev needs the sandbox package and the dev extra, which a checkout has "
            f"(make run): {exc}",
            file=sys.stderr,
        )
        return EXIT_BAD_CONFIG
    return run_dev(args)


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    from bot.db.migrate import upgrade

    settings = _settings()
    configure_logs(settings, settings.secret_values())
    upgrade(settings.effective_database_url, timeouts=settings.db_timeouts)
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
            elif not target.release_channel and _cli_deploys(config, target):
                notes.append(
                    f"{where} has no release_channel: a deploy from the CLI (opsbot deploy) "
                    "is announced nowhere, so nobody in Slack hears how it ended"
                )
    return notes + _aws_notes(config)


def _cli_deploys(config: Config, target: AppEnvironment) -> bool:
    """Whether someone `rights.cli` maps may deploy `target` (a group's members: maybe)."""
    mapped = set(config.rights.cli.values())
    return bool(target.deployers.groups or mapped & set(target.deployers.users))


def _aws_notes(config: Config) -> list[str]:
    """Apps changed wherever the AWS settings of the process point, not where they live."""
    if not config.apps:
        return []
    notes = []
    if config.aws.region is None:
        notes.append(
            "aws.region is not set: apps are changed in whichever region AWS_REGION names "
            "where opsbot runs (for opsbot deploy, the pipeline's), where a cluster and "
            "service of the same names may be another's"
        )
    protected = [
        f"apps.{name}.environments.{env}"
        for name, app in sorted(config.apps.items())
        for env, target in sorted(app.environments.items())
        if target.protected or target.require_approval
    ]
    if config.aws.account_id is None and protected:
        notes.append(
            f"aws.account_id is not set: {', '.join(protected)} "
            f"{'is' if len(protected) == 1 else 'are'} changed in whichever account the "
            "credentials opsbot runs with are of"
        )
    return notes


def _rights_notes(config: Config) -> list[str]:
    """Rights that validate but that nobody holds."""
    notes = []
    doing = {
        "respond": "acknowledge, resolve, escalate or add notes to",
        "declare": "declare",
        "silence": "silence",
    }
    for where, rights in [("rights.incidents", config.rights.incidents)] + [
        (f"alarm_routes[{n}].rights", config.rights.incidents.for_route(route.rights))
        for n, route in enumerate(config.alarm_routes)
        if route.rights is not None
    ]:
        for right, what in doing.items():
            if getattr(rights, right).is_empty:
                notes.append(f"{where}.{right} names nobody: nobody may {what} these incidents")
    if config.rights.admins.is_empty:
        notes.append(
            "rights.admins is empty: nobody may link PagerDuty identities for others from "
            "Slack, retry dead deliveries, or act on the open incidents of a route once it is "
            "renamed or removed (only admins may)"
        )
    github = sorted(name for name in config.rights.cli if name.startswith("github:"))
    if github and not config.rights.cli_github.repositories:
        notes.append(
            f"rights.cli maps {', '.join(github)} but rights.cli_github.repositories is empty: "
            "no GitHub OIDC token is accepted, so nobody is a github: identity"
        )
    for key in github:
        if "#" not in key:
            notes.append(
                f"rights.cli key {key} names a GitHub login, which a rename or a deletion "
                "frees for anyone to register: pin the account as "
                f"{key}#<id> (its id: gh api users/{key.removeprefix('github:')} --jq .id)"
            )
    for entry in config.rights.cli_github.repositories:
        if "#" not in entry:
            notes.append(
                f"rights.cli_github.repositories entry {entry} names a repository by its "
                "name, which renaming or deleting it or its owner frees for anyone to "
                f"register: pin it as {entry}#<id> (its id: gh api repos/{entry} --jq .id)"
            )
    return notes


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a file; without --offline, also as `opsbot serve` would check it here."""
    from bot.ops.preflight import offline

    settings = _settings()
    path = Path(args.path) if args.path else settings.config_path
    config = _config(settings, path)
    checked = offline(config) if args.offline else _preflight(settings, config)
    source = str(path) if path else "embedded default configuration"
    environments = sum(len(app.environments) for app in config.apps.values())
    counts = (
        f"{len(config.alarm_routes)} alarm routes, {len(config.apps)} apps "
        f"with {environments} environments"
    )
    if checked.ok:
        print(f"{source}: valid ({counts}{', checked offline' if args.offline else ''})")
    for note in _app_notes(config) + overlapping_globs(config) + _rights_notes(config):
        print(f"note: {note}")
    for note in checked.warnings:
        print(f"note: {note}")
    if not config.ops_channel:
        print("note: ops_channel is not set: opsbot's own failures are only logged and counted")
    if checked.needs:
        print("where opsbot runs, these must be set and not empty:")
        for env_name, keys in sorted(checked.needs.items()):
            print(f"  {env_name} ({', '.join(keys)})")
    if checked.ok:
        return 0
    print(
        f"{source}: refused: opsbot serve would not start with it in this environment "
        "(--offline checks the file without this environment's secrets and Slack):",
        file=sys.stderr,
    )
    for refusal in checked.refusals:
        print(f"  {refusal}", file=sys.stderr)
    return EXIT_BAD_CONFIG


def cmd_outbox(args: argparse.Namespace) -> int:
    from bot.db.engine import make_engine, make_sessionmaker
    from bot.outbox import service as outbox

    settings = _settings()
    if args.outbox_command == "retry":
        return _outbox_retry(settings, delivery_id=args.id)
    configure_logging(settings.log_level, settings.secret_values())
    engine = make_engine(settings.effective_database_url, timeouts=settings.db_timeouts)
    with make_sessionmaker(engine)() as db_session:
        for kind, status, count in outbox.summary(db_session):
            print(f"{kind:18} {status:10} {count}")
        for row in outbox.dead(db_session, limit=20):
            print(f"dead #{row.id} {row.kind} to {row.target}: {row.last_error}")
    engine.dispose()
    return 0


def _outbox_retry(settings: Settings, *, delivery_id: int | None) -> int:
    """`opsbot outbox retry`: the Retry button's path (bot/ops/flows.py), for the Slack user
    `rights.cli` maps the CLI's identity to, audited as `cli:<identity>`."""
    from bot.db.engine import make_engine, make_sessionmaker
    from bot.rights.service import Rights
    from bot.rights.workspace import Workspace

    config = _config(settings)
    configure_logs(settings, _secrets(settings, config))
    engine = make_engine(settings.effective_database_url, timeouts=settings.db_timeouts)
    # Slack says whether the mapped person is in a group of `rights.admins`, or a guest.
    client = _slack_client(settings, timeout_s=config.delivery.request_timeout_s)
    try:
        retried = _retry_as_cli_user(
            settings,
            config,
            make_sessionmaker(engine),
            Rights(config=config, workspace=Workspace(client)),
            delivery_id=delivery_id,
        )
    finally:
        if client is not None:
            client.close()
        engine.dispose()
    if retried.refused:
        print(f"refused: {_plain(retried.text)}", file=sys.stderr)
        return EXIT_REFUSED
    print(_plain(retried.text))
    return 0


def _retry_as_cli_user(
    settings: Settings,
    config: Config,
    sessions: sessionmaker[Session],
    rights: Rights,
    *,
    delivery_id: int | None,
) -> Retried:
    """The CLI's identity, then the Slack user it acts as, then the retry (each audited)."""
    from bot.clock import SystemClock
    from bot.deploys.cli import UNVERIFIED
    from bot.ops.flows import refuse_retry, retry_dead
    from bot.rights.errors import RightMissing

    now = SystemClock().now()
    identity = UNVERIFIED
    try:
        identity = _cli_identity(settings, config)
        user_id = rights.cli_user(identity)
    except RightMissing as exc:  # no identity, or one nobody mapped: nobody's rights apply
        return refuse_retry(
            sessions, now=now, actor=f"cli:{identity}", delivery_id=delivery_id, error=exc
        )
    return retry_dead(
        sessions,
        rights,
        now=now,
        actor=f"cli:{identity}",
        user_id=user_id,
        delivery_id=delivery_id,
    )


def cmd_status(_args: argparse.Namespace) -> int:
    """`opsbot status`: what `/opsbot status` shows, read from the database."""
    from bot.clock import SystemClock
    from bot.db.engine import make_engine, make_sessionmaker
    from bot.observability.outbox_gauges import read_backlog
    from bot.ops import render
    from bot.ops.instances import package_version
    from bot.ops.status import gather

    settings = _settings()
    engine = make_engine(settings.effective_database_url)
    now = SystemClock().now()
    with make_sessionmaker(engine)() as db_session:
        status = gather(
            db_session,
            backlog=read_backlog(db_session, now),
            now=now,
            version=package_version(),
            commit=settings.build_commit,
            config_version=_config_version(settings),
            heartbeat_s=settings.heartbeat_s,
        )
    engine.dispose()
    print(render.status_text(status))
    return 0


def cmd_manifest(args: argparse.Namespace) -> int:
    import yaml

    from bot.manifest import build_manifest

    settings = _settings()
    naming = _config(settings, Path(args.config) if args.config else None).commands.naming
    if args.socket_mode is None:
        socket_mode = settings.slack_app_token is not None
    else:
        socket_mode = args.socket_mode
    if not socket_mode and not args.url:
        print("--url: where opsbot is served (https://host), or --socket-mode", file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        manifest = build_manifest(args.url, naming, socket_mode=socket_mode)
    except ValueError as exc:
        print(f"--url: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    print(yaml.safe_dump(manifest, sort_keys=False, width=100), end="")
    return 0


def _plain(text: str) -> str:
    """Slack markup, as a terminal should show it (dates in UTC, entities as characters)."""
    return unescape(slack_dates.plain(text).replace("`", "").replace("*", ""))


def _cli_identity(settings: Settings, config: Config) -> str:
    """Who runs the CLI: the job a GitHub OIDC token was signed for, else the OS user.

    A token that does not verify is refused (TokenRefused), never read as the OS user.
    """
    if settings.github_oidc_token is None:
        return settings.os_identity
    import ssl
    import time

    import certifi

    from bot.adapters import tls
    from bot.config import GITHUB_OIDC_ISSUER
    from bot.rights import github_oidc
    from bot.sns.fetch import make_fetch

    accepted = config.rights.cli_github
    # Whoever runs the CLI sets its environment: GitHub's keys are fetched past no proxy
    # (HTTPS_PROXY) and trusted only with the public CAs shipped with the code, never a
    # CA file the environment names (SSL_CERT_FILE). Another issuer (GitHub Enterprise
    # Server, the sandbox's) is the deployment's own, trusted with its CA file.
    if accepted.issuer == GITHUB_OIDC_ISSUER:
        trusted = ssl.create_default_context(cafile=certifi.where())
    else:
        trusted = tls.client_context(settings.ssl_cert_file)
    job = github_oidc.verify(
        settings.github_oidc_token.get_secret_value(),
        issuer=accepted.issuer,
        audience=accepted.audience,
        repositories=accepted.repositories,
        environments=accepted.environments,
        fetch=make_fetch(trusted, trust_env=False),
        now=int(time.time()),
    )
    identity = job.key_in(config.rights.cli)
    log.info(
        "CLI identity %s from a GitHub OIDC token of %s (run %s)",
        identity,
        job.repository,
        job.run_id,
        extra={
            "identity": identity,
            "github_login": job.actor,
            "github_id": job.actor_id,
            "repository": job.repository,
            "ref": job.ref,
            "run_id": job.run_id,
            "token_id": job.token_id,
        },
    )
    if identity not in config.rights.cli and (former := job.renamed_from(config.rights.cli)):
        # The same account under its former login: the key's login and id disagree with the
        # token's, and the operator, not the CLI, decides which is right.
        log.warning(
            "rights.cli maps GitHub account %s under another login (%s), not as %s: "
            "rename the key if the account was renamed",
            job.actor_id,
            ", ".join(former),
            job.actor,
            extra={
                "identity": identity,
                "github_login": job.actor,
                "github_id": job.actor_id,
                "mapped_as": former,
                "run_id": job.run_id,
            },
        )
    return identity


def cmd_deploy(args: argparse.Namespace) -> int:
    from bot.app import build_runtime
    from bot.deploys.cli import run_deploy

    settings = _settings()
    config = _config(settings)
    configure_logs(settings, _secrets(settings, config))
    runtime = build_runtime(settings, config, run_jobs=False)
    # Started only to write the watch job into the shared job store: the
    # serving bot's leader runs it (and sends the Slack messages).
    runtime.scheduler.start(runtime.jobs)
    try:
        return run_deploy(
            runtime,
            app=args.app,
            env=args.env,
            tag=args.tag,
            identify=lambda: _cli_identity(settings, config),
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
    serve.add_argument(
        "--metrics-port",
        type=int,
        help="serve GET /metrics on this port (default: OPSBOT_METRICS_PORT, else none)",
    )
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
        help="where the sandbox keeps its database and test CA, emptied at each start: a new "
        "or empty directory, or one an earlier start marked as the sandbox's; any other is "
        "refused (default: var/sandbox)",
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
    retry = box_commands.add_parser(
        "retry",
        help="send abandoned deliveries again (rights.admins only, as the Retry button)",
        description="Put abandoned deliveries back in line, as /opsbot status's Retry button "
        "does: for the Slack user rights.cli maps this CLI's identity to, who must be one of "
        "rights.admins; audited (outbox.retry, actor cli:<identity>). Exit codes: 0 done, "
        "2 bad configuration, 3 refused.",
    )
    retry.add_argument("--id", type=int, help="only this delivery (default: every abandoned one)")
    box.set_defaults(func=cmd_outbox)

    status = commands.add_parser(
        "status", help="outbox depth, dead deliveries, Slack auth, instances, versions"
    )
    status.set_defaults(func=cmd_status)

    manifest = commands.add_parser("manifest", help="print the Slack app manifest")
    manifest.add_argument("--url", help="where opsbot is served: https://host (HTTP mode)")
    manifest.add_argument(
        "--socket-mode",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Slack talks to opsbot over Socket Mode (default: whether SLACK_APP_TOKEN is set)",
    )
    manifest.add_argument(
        "--config", help="the configuration whose `commands:` names the commands (OPSBOT_CONFIG)"
    )
    manifest.set_defaults(func=cmd_manifest)

    check = commands.add_parser(
        "check-config",
        help="validate a configuration file, and check it as `opsbot serve` would here",
    )
    check.add_argument("path", nargs="?", help="the file (default: OPSBOT_CONFIG or embedded)")
    check.add_argument(
        "--offline",
        action="store_true",
        help="check the file alone, away from where opsbot runs (a deploy pipeline): list "
        "the secrets it names instead of requiring them here, and do not ask Slack",
    )
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
    deploy.set_defaults(func=cmd_deploy)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
