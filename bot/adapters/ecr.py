"""Amazon ECR, narrowly: images by tag or digest, recent images, scan findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from bot.adapters.aws import error_code

# Scan statuses that come with findings (ACTIVE: enhanced scanning, continuously).
SCAN_DONE = {"COMPLETE", "ACTIVE"}
# The most images one DescribeImages page holds (its maxResults).
DESCRIBE_IMAGES_MAX = 1000


@dataclass(frozen=True)
class Image:
    repository: str
    digest: str  # sha256:...
    tags: tuple[str, ...]
    pushed_at: datetime | None
    size_bytes: int | None = None


@dataclass(frozen=True)
class Scan:
    """An image's scan: None status when it was never scanned."""

    status: str | None
    counts: dict[str, int] = field(default_factory=dict)  # severity -> findings
    completed_at: datetime | None = None
    description: str | None = None

    @property
    def has_results(self) -> bool:
        return self.status in SCAN_DONE


def _utc(moment: Any) -> datetime | None:
    return moment.astimezone(UTC) if isinstance(moment, datetime) else None


def _image(repository: str, detail: dict[str, Any]) -> Image:
    return Image(
        repository=repository,
        digest=str(detail["imageDigest"]),
        tags=tuple(detail.get("imageTags") or ()),
        pushed_at=_utc(detail.get("imagePushedAt")),
        size_bytes=detail.get("imageSizeInBytes"),
    )


def repository_uri(client: Any, *, repository: str) -> str:
    """``<account>.dkr.ecr.<region>.amazonaws.com/<repository>``."""
    answer = client.describe_repositories(repositoryNames=[repository])
    return str(answer["repositories"][0]["repositoryUri"])


def find_image(
    client: Any, *, repository: str, tag: str | None = None, digest: str | None = None
) -> Image | None:
    """The image with this tag (or digest); None when the repository has no such image."""
    image_id = {"imageDigest": digest} if digest else {"imageTag": tag}
    try:
        answer = client.describe_images(repositoryName=repository, imageIds=[image_id])
    except ClientError as exc:
        if error_code(exc) == "ImageNotFoundException":
            return None
        raise
    details = answer.get("imageDetails") or []
    return _image(repository, details[0]) if details else None


def recent_images(
    client: Any, *, repository: str, limit: int, stop_at_limit: bool = False
) -> list[Image]:
    """The newest tagged images, newest first.

    `stop_at_limit`: read no more pages once `limit` images are read, and give the
    newest of those. DescribeImages keeps no order, so in a repository of more
    images these may miss newer ones: for a search that must answer within
    Slack's three seconds, not for a list that claims to be the newest.
    """
    images: list[Image] = []
    paging = {"PageSize": min(limit, DESCRIBE_IMAGES_MAX)} if stop_at_limit else {}
    pages = client.get_paginator("describe_images").paginate(
        repositoryName=repository, filter={"tagStatus": "TAGGED"}, PaginationConfig=paging
    )
    for page in pages:
        images.extend(
            _image(repository, d) for d in page.get("imageDetails") or [] if d.get("imageTags")
        )
        if stop_at_limit and len(images) >= limit:
            break
    oldest = datetime.min.replace(tzinfo=UTC)
    images.sort(key=lambda image: image.pushed_at or oldest, reverse=True)
    return images[:limit]


def scan(client: Any, *, repository: str, digest: str) -> Scan:
    """The image's latest scan (basic or enhanced); status None if it never was scanned."""
    try:
        answer = client.describe_image_scan_findings(
            repositoryName=repository, imageId={"imageDigest": digest}, maxResults=1
        )
    except ClientError as exc:
        if error_code(exc) == "ScanNotFoundException":
            return Scan(status=None)
        raise
    status = answer.get("imageScanStatus") or {}
    findings = answer.get("imageScanFindings") or {}
    counts = {str(k): int(v) for k, v in (findings.get("findingSeverityCounts") or {}).items()}
    return Scan(
        status=status.get("status"),
        counts=counts,
        completed_at=_utc(findings.get("imageScanCompletedAt")),
        description=status.get("description"),
    )
