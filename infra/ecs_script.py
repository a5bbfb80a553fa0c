"""What the ECS scripts beside this file share: their common arguments, their output and
the ECS client of the region in the environment (`AWS_ENDPOINT_URL` for a stand-in)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from bot.adapters.aws import client as aws_client


def parser(doc: str | None, *, timeout_min: float) -> argparse.ArgumentParser:
    """--cluster, --service, --container and --timeout-min; the script adds its own."""
    made = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    made.add_argument("--cluster", required=True)
    made.add_argument("--service", required=True)
    made.add_argument("--container", default="opsbot")
    made.add_argument("--timeout-min", type=float, default=timeout_min)
    return made


def say(text: str) -> None:
    print(text, flush=True)


def ecs_client() -> Any | None:
    """The region's ECS client, or None (said why) when no region is set."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        say("AWS_REGION is not set")
        return None
    return aws_client("ecs", region=region, endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
