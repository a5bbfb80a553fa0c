"""/opsbot: help and housekeeping."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.runtime import Runtime

USAGE = "\n".join(
    [
        "*opsbot* — incidents and releases from Slack",
        "`/opsbot help` — this message",
        "Alarms arrive by themselves: CloudWatch → SNS → opsbot → this workspace and PagerDuty.",
    ]
)


def usage(problem: str | None = None) -> str:
    return f"{problem}\n\n{USAGE}" if problem else USAGE


def register(app: App, runtime: Runtime) -> None:
    @app.command("/opsbot")
    def opsbot(ack: Ack, command: dict[str, Any]) -> None:
        words = (command.get("text") or "").split()
        if not words or words[0] == "help":
            ack(text=usage())
            return
        ack(text=usage(f"Unknown subcommand `{words[0]}`."))
