#!/usr/bin/env python3
"""Roll opsbot's ECS service onto Terraform's latest task definition, keeping its image.

    python infra/release_task_definition.py --cluster C --service S \\
        --terraform-revision ARN [--container opsbot] [--wait] [--timeout-min 20]

Terraform owns the shape of the task definition (environment, secrets, CPU and memory,
the pinned config version OPSBOT_CONFIG_VERSION); `opsbot deploy` owns the image: it
registers a copy of the running revision with a new image digest. Terraform's own
revision never runs by itself (the service ignores it after creation), so after an apply
this registers Terraform's revision with the image the service runs now, tagged with
the revision it came from, and rolls the service to it. Every later `opsbot deploy`
copies that revision, tag included, so a config change and an image change are each a
revision, and rolling back a revision rolls back both.

Nothing happens when the running revision is Terraform's or was made from it. Exit
codes: 0 released (or nothing to do), 1 failed, 4 the rollout failed (the deployment
circuit breaker rolled it back), 5 --wait timed out. Needs the opsbot package (its ECS
adapter) and AWS credentials that may describe, register and update.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import replace

import ecs_script  # beside this file
from botocore.exceptions import BotoCoreError, ClientError

from bot.adapters import ecs

BASE_TAG = "opsbot:terraform-revision"
OK, FAILED, ROLLOUT_FAILED, TIMEOUT = 0, 1, 4, 5


def _tag(task_definition: ecs.TaskDefinition, key: str) -> str | None:
    return next((t.get("value") for t in task_definition.tags if t.get("key") == key), None)


def _config_version(task_definition: ecs.TaskDefinition, container: str) -> str:
    for definition in task_definition.body.get("containerDefinitions") or []:
        if definition.get("name") == container:
            for item in definition.get("environment") or []:
                if item.get("name") == "OPSBOT_CONFIG_VERSION":
                    return str(item.get("value"))
    return "unpinned"


def release(
    client: object,
    *,
    cluster: str,
    service: str,
    container: str,
    terraform_revision: str,
    say: Callable[[str], None],
) -> str | None:
    """Register Terraform's revision with the running image and roll the service to it.

    Return the new revision's ARN, or None when the service already runs Terraform's
    revision or one made from it.
    """
    state = ecs.describe_service(client, cluster=cluster, service=service)
    running = ecs.describe_task_definition(client, arn=state.task_definition)
    base = ecs.describe_task_definition(client, arn=terraform_revision)
    if base.arn in (running.arn, _tag(running, BASE_TAG)):
        say(f"{service}: {running.short} already carries {base.short}; nothing to release")
        return None
    image = running.image_of(container)
    if image is None:
        raise ecs.ContainerNotFound(
            f"running revision {running.short} has no container {container!r} "
            f"(it has {', '.join(running.container_names())})"
        )
    tags = [t for t in base.tags if t.get("key") != BASE_TAG]
    tags.append({"key": BASE_TAG, "value": base.arn})
    registered = ecs.register_with_image(
        client, replace(base, tags=tuple(tags)), container=container, image=image
    )
    ecs.update_service(client, cluster=cluster, service=service, task_definition=registered.arn)
    say(
        f"{service}: {running.short} -> {registered.short} (from {base.short}; "
        f"config {_config_version(running, container)} -> "
        f"{_config_version(registered, container)}; image {image})"
    )
    return registered.arn


def wait(
    client: object,
    *,
    cluster: str,
    service: str,
    revision: str,
    timeout_s: float,
    say: Callable[[str], None],
    poll_s: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """Follow the service until `revision` runs alone, fails, or time runs out."""
    deadline = monotonic() + timeout_s
    last = ""
    while True:
        state = ecs.describe_service(client, cluster=cluster, service=service)
        rollout = next((d for d in state.deployments if d.task_definition == revision), None)
        if rollout is None:
            say(f"{service}: {revision} is no longer deployed (superseded or rolled back)")
            return ROLLOUT_FAILED
        line = f"{rollout.rollout_state}: {rollout.running}/{rollout.desired} running"
        if line != last:
            say(f"{service}: {line}")
            last = line
        if rollout.rollout_state == "FAILED":
            say(f"{service}: rollout failed: {rollout.reason or 'no reason given'}")
            return ROLLOUT_FAILED
        if rollout.rollout_state == "COMPLETED" and len(state.deployments) == 1:
            return OK
        if monotonic() > deadline:
            say(f"{service}: timed out; the rollout of {revision} goes on")
            return TIMEOUT
        sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    parser = ecs_script.parser(__doc__, timeout_min=20.0)
    parser.add_argument("--terraform-revision", required=True, help="ARN (terraform output)")
    parser.add_argument("--wait", action="store_true", help="follow the rollout to its end")
    args = parser.parse_args(argv)
    say = ecs_script.say

    client = ecs_script.ecs_client()
    if client is None:
        return FAILED
    try:
        revision = release(
            client,
            cluster=args.cluster,
            service=args.service,
            container=args.container,
            terraform_revision=args.terraform_revision,
            say=say,
        )
        if revision is None or not args.wait:
            return OK
        return wait(
            client,
            cluster=args.cluster,
            service=args.service,
            revision=revision,
            timeout_s=args.timeout_min * 60,
            say=say,
        )
    except (ecs.ServiceNotFound, ecs.ContainerNotFound) as exc:
        say(f"failed: {exc}")
        return FAILED
    except (BotoCoreError, ClientError) as exc:
        say(f"failed: AWS answered {exc}")
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
