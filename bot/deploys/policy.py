"""The rules a deploy is checked against, as pure functions of config and facts."""

from __future__ import annotations

import re
from datetime import datetime

from bot.adapters.ecr import Scan
from bot.config import AppEnvironment, FreezeWindow
from bot.slack_text import code

DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")
SEVERITY_ORDER = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")


def active_freeze(settings: AppEnvironment, *, now: datetime) -> FreezeWindow | None:
    """The change freeze in force at `now`, if any (the one ending last, if several)."""
    current = [f for f in settings.freezes if f.start <= now < f.end]
    return max(current, key=lambda f: f.end) if current else None


def blocking_findings(scan: Scan, *, blocking: list[str]) -> dict[str, int]:
    """Counts of findings at a blocking severity (only the non-zero ones)."""
    return {s: scan.counts[s] for s in SEVERITY_ORDER if s in blocking and scan.counts.get(s)}


def findings_text(counts: dict[str, int]) -> str:
    """``CRITICAL 2 · HIGH 5``, most severe first; ``none`` when empty."""
    ordered = [s for s in SEVERITY_ORDER if counts.get(s)]
    ordered += sorted(s for s in counts if s not in SEVERITY_ORDER and counts[s])
    return " · ".join(f"{s} {counts[s]}" for s in ordered) or "none"


def scan_text(scan: Scan) -> str:
    if scan.status is None:
        return "not scanned"
    if not scan.has_results:
        return f"scan {scan.status.lower().replace('_', ' ')}"
    return f"findings: {findings_text(scan.counts)}"


def digest_of(image: str | None) -> str | None:
    """The digest an image reference is pinned to (``repo@sha256:...``), if it is."""
    if not image:
        return None
    match = DIGEST.search(image)
    return match.group(1) if match else None


def tag_of(image: str | None) -> str | None:
    """The tag of ``repo:tag`` (not of a registry port, nor of a digest reference)."""
    if not image or "@" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def short_digest(digest: str | None) -> str:
    if not digest:
        return "?"
    return digest.removeprefix("sha256:")[:12]


def short_image(image: str | None) -> str:
    """``api@sha256:0123456789ab`` or ``api:1.2.3``: the repository name, not the registry."""
    if not image:
        return "?"
    name = image.rsplit("/", 1)[-1]
    digest = digest_of(image)
    if digest:
        return f"{name.split('@', 1)[0]}@{short_digest(digest)}"
    return name


def image_text(image: str | None, tag: str | None) -> str:
    """``1.2.3 (api@0123456789ab)`` as mrkdwn code, or the short image alone when no tag is known.

    Tags and image names are ECR's (whoever pushes writes them): shown inert.
    """
    short = code(short_image(image))
    return f"{code(tag)} ({short})" if tag else short


def short_task_definition(arn: str | None) -> str:
    """``api:42`` from an ARN."""
    if not arn:
        return "?"
    return arn.rsplit("/", 1)[-1]
