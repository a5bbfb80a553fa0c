#!/usr/bin/env python3
"""Run one opsbot command as a one-off ECS task of the service, where the bot itself runs.

    python infra/run_in_service.py --cluster C --service S [--container opsbot] \\
        [--audience opsbot] [--timeout-min 30] -- opsbot deploy opsbot prod v1.4.2

Commands such as `opsbot deploy` need what only the service has: its database (locks,
history and the watch job the serving bot's leader picks up), its secrets and its
network. A CI runner has none of them, so this starts a task of the service's running
revision in the service's own subnets and security groups, with the command as the
container's command, and waits for it to stop. The task's log stream is printed so the
run can be read in CloudWatch.

The command's identity is the GitHub Actions job's: in a job with `permissions:
id-token: write`, the runner mints an OIDC token for `--audience`, which the command
receives as OPSBOT_GITHUB_OIDC_TOKEN and `opsbot` verifies against GitHub's keys
(`github:<login>#<id>`). No name the workflow writes becomes an identity. Without the
runner's token variables the command runs with no identity of its own.

Exit codes: the command's own exit code; 1 when the task could not be started or
stopped without one; 5 when --timeout-min passed first (the task is stopped).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import ecs_script  # beside this file
from botocore.exceptions import BotoCoreError, ClientError

FAILED, TIMEOUT = 1, 5
IDENTITY_VARIABLE = "OPSBOT_GITHUB_OIDC_TOKEN"


def runner_token(audience: str) -> str | None:
    """The OIDC token GitHub's runner mints for this job and `audience`; None outside one.

    ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN exist only in a job allowed `id-token: write`.
    """
    url = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    bearer = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if not url or not bearer:
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise LookupError(f"ACTIONS_ID_TOKEN_REQUEST_URL is not a web address: {parts.scheme}:")
    separator = "&" if parts.query else "?"
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
        f"{url}{separator}{urllib.parse.urlencode({'audience': audience})}",
        headers={"Authorization": f"bearer {bearer}", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        answered = json.loads(answer.read(64 * 1024))
    value = answered.get("value") if isinstance(answered, dict) else None
    if not isinstance(value, str) or not value:
        raise LookupError("the runner's token endpoint answered no token")
    return value


def start(
    client: Any,
    *,
    cluster: str,
    service: str,
    container: str,
    command: list[str],
    token: str | None,
) -> str:
    """Start the one-off task, with `token` as the command's identity; return its ARN."""
    [state] = client.describe_services(cluster=cluster, services=[service]).get("services") or [
        None
    ]
    if state is None or state.get("status") != "ACTIVE":
        raise LookupError(f"service {service!r} is not active in cluster {cluster!r}")
    run: dict[str, Any] = {
        "cluster": cluster,
        "taskDefinition": state["taskDefinition"],
        "count": 1,
        "startedBy": "opsbot-run-in-service",
        "overrides": {
            "containerOverrides": [
                {
                    "name": container,
                    "command": command,
                    "environment": [{"name": IDENTITY_VARIABLE, "value": token}] if token else [],
                }
            ]
        },
    }
    if state.get("networkConfiguration"):
        run["networkConfiguration"] = state["networkConfiguration"]
    if state.get("capacityProviderStrategy"):
        run["capacityProviderStrategy"] = state["capacityProviderStrategy"]
    else:
        run["launchType"] = state.get("launchType") or "FARGATE"
    answer = client.run_task(**run)
    if not answer.get("tasks"):
        reasons = "; ".join(f.get("reason", "?") for f in answer.get("failures") or [])
        raise LookupError(f"ECS did not start the task: {reasons or 'no reason given'}")
    return str(answer["tasks"][0]["taskArn"])


def wait(
    client: Any,
    *,
    cluster: str,
    task: str,
    container: str,
    timeout_s: float,
    say: Callable[[str], None],
    poll_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """Follow the task until it stops; return its container's exit code."""
    deadline = monotonic() + timeout_s
    last = ""
    while True:
        [described] = client.describe_tasks(cluster=cluster, tasks=[task])["tasks"]
        status = str(described.get("lastStatus", "?"))
        if status != last:
            say(f"task {task.rsplit('/', 1)[-1]}: {status}")
            last = status
        if status == "STOPPED":
            mine = next(
                (c for c in described.get("containers") or [] if c.get("name") == container), {}
            )
            if mine.get("exitCode") is None:
                say(
                    f"stopped without an exit code: {described.get('stoppedReason') or 'no reason'}"
                )
                return FAILED
            return int(mine["exitCode"])
        if monotonic() > deadline:
            client.stop_task(cluster=cluster, task=task, reason="run_in_service: timed out")
            say("timed out; the task is stopped")
            return TIMEOUT
        sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    parser = ecs_script.parser(__doc__, timeout_min=30.0)
    parser.add_argument(
        "--audience", default="opsbot", help="the OIDC token's audience (rights.cli_github)"
    )
    parser.add_argument("--poll-s", type=float, default=5.0)
    parser.add_argument("command", nargs="+", help="the container's command, after --")
    args = parser.parse_args(argv)
    say = ecs_script.say

    client = ecs_script.ecs_client()
    if client is None:
        return FAILED
    try:
        token = runner_token(args.audience)
    except (OSError, ValueError, LookupError) as exc:
        say(f"failed: the runner gave no OIDC token ({exc})")
        return FAILED
    if token is None:
        say("no GitHub OIDC token (the job needs `permissions: id-token: write`): no identity")
    try:
        task = start(
            client,
            cluster=args.cluster,
            service=args.service,
            container=args.container,
            command=args.command,
            token=token,
        )
        task_id = task.rsplit("/", 1)[-1]
        say(f"started {task} ({' '.join(args.command)}); log stream */{args.container}/{task_id}")
        return wait(
            client,
            cluster=args.cluster,
            task=task,
            container=args.container,
            timeout_s=args.timeout_min * 60,
            say=say,
            poll_s=args.poll_s,
        )
    except LookupError as exc:
        say(f"failed: {exc}")
        return FAILED
    except (BotoCoreError, ClientError) as exc:
        say(f"failed: AWS answered {exc}")
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
