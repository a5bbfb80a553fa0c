"""The demo ECR repository: a release history of `checkout` images.

Images are pushed with `put_image` and Docker v2 manifests, so each has a real
digest (the SHA-256 of its manifest) and several tags. moto stamps every push
with the time of the push; to give `/releases` a believable history the push
times are then moved back through moto's own image objects (the one place this
module reaches into moto). Scan findings are set through moto's documented
`/moto-api/static/ecr/scan-finding-results` endpoint, then each image is scanned.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sandbox.world import ACCOUNT, REGION, REPOSITORY, Clients

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


@dataclass(frozen=True)
class DemoImage:
    tags: tuple[str, ...]
    age: timedelta  # how long ago it was pushed
    findings: dict[str, int]  # scan finding counts by severity
    starts: bool = True  # False: its tasks crash at start, so a rollout of it fails
    note: str = ""


IMAGES = (
    DemoImage(("1.3.0",), timedelta(days=30), {"MEDIUM": 2, "LOW": 5}),
    DemoImage(("1.4.0",), timedelta(days=9), {"LOW": 3}, note="runs in prod"),
    DemoImage(("1.4.1",), timedelta(days=5), {"LOW": 3}, note="runs in staging"),
    DemoImage(("1.5.0", "latest"), timedelta(days=1), {"LOW": 1}, note="the next release"),
    DemoImage(
        ("1.6.0-rc.1",),
        timedelta(hours=2),
        {"CRITICAL": 1, "HIGH": 2, "MEDIUM": 4},
        note="a CRITICAL scan finding: /deploy refuses it unless forced",
    ),
    DemoImage(
        ("1.6.0-rc.2",),
        timedelta(minutes=30),
        {"LOW": 1},
        starts=False,
        note="crashes at start: its rollout fails and ECS rolls back",
    ),
)


def manifest(tag: str) -> str:
    """A Docker image manifest (schema 2) with layers that are stable for a tag."""

    def digest(part: str) -> str:
        return "sha256:" + hashlib.sha256(f"{REPOSITORY}:{tag}:{part}".encode()).hexdigest()

    layers = [
        {
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": size,
            "digest": digest(name),
        }
        for name, size in (("base", 29_124_389), ("runtime", 14_901_775), ("app", 2_310_522))
    ]
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 7_023,
                "digest": digest("config"),
            },
            "layers": layers,
        },
        separators=(",", ":"),
    )


def image_digest(tag: str) -> str:
    return "sha256:" + hashlib.sha256(manifest(tag).encode()).hexdigest()


def digest_of(tag: str) -> str:
    """The digest of the demo image that carries `tag`."""
    image = next(i for i in IMAGES if tag in i.tags)
    return image_digest(image.tags[0])


def seed(clients: Clients, *, moto_url: str) -> None:
    ecr = clients("ecr")
    ecr.create_repository(
        repositoryName=REPOSITORY,
        imageTagMutability="MUTABLE",
        imageScanningConfiguration={"scanOnPush": True},
    )
    for image in IMAGES:
        body = manifest(image.tags[0])
        for tag in image.tags:
            ecr.put_image(
                repositoryName=REPOSITORY,
                imageManifest=body,
                imageManifestMediaType=MANIFEST_TYPE,
                imageTag=tag,
                imageDigest=image_digest(image.tags[0]),
            )
    _backdate_pushes()
    _set_findings(moto_url)
    for image in IMAGES:
        ecr.start_image_scan(
            repositoryName=REPOSITORY, imageId={"imageDigest": image_digest(image.tags[0])}
        )


def _backdate_pushes() -> None:
    from moto.ecr.models import ecr_backends

    now = time.time()
    repository = ecr_backends[ACCOUNT][REGION].repositories[REPOSITORY]
    ages = {image_digest(i.tags[0]): i.age for i in IMAGES}
    for pushed in repository.images:
        age = ages.get(pushed.get_image_digest())
        if age is not None:
            pushed.image_pushed_at = int(now - age.total_seconds())


def _finding(severity: str, n: int) -> dict[str, Any]:
    cve = f"CVE-2026-{1000 + n * 7 + len(severity)}"
    return {
        "name": cve,
        "uri": f"https://nvd.nist.gov/vuln/detail/{cve}",
        "severity": severity,
        "attributes": [
            {"key": "package_name", "value": "openssl" if severity == "CRITICAL" else "zlib"},
            {"key": "package_version", "value": "3.0.13" if severity == "CRITICAL" else "1.2.13"},
        ],
    }


def scan_result(image: DemoImage, tag: str | None) -> dict[str, Any]:
    now = time.time()
    image_id = {"imageDigest": image_digest(image.tags[0])}
    if tag is not None:
        image_id["imageTag"] = tag
    return {
        "registryId": ACCOUNT,
        "repositoryName": REPOSITORY,
        "imageId": image_id,
        "imageScanStatus": {
            "status": "COMPLETE",
            "description": "The scan was completed successfully.",
        },
        "imageScanFindings": {
            "imageScanCompletedAt": now - image.age.total_seconds() + 60,
            "vulnerabilitySourceUpdatedAt": now - 3600,
            "findingSeverityCounts": dict(image.findings),
            "findings": [
                _finding(severity, n)
                for severity, count in image.findings.items()
                for n in range(count)
            ],
        },
    }


def _set_findings(moto_url: str) -> None:
    # moto hands a configured result to the first lookup of an image by each
    # distinct imageId (by digest, by tag, by both): queue one for each way.
    results = []
    for image in IMAGES:
        results.append(scan_result(image, None))
        for tag in image.tags:
            results += [scan_result(image, tag), scan_result(image, tag)]
    request = urllib.request.Request(  # noqa: S310  # the sandbox's own moto on loopback
        f"{moto_url}/moto-api/static/ecr/scan-finding-results",
        data=json.dumps({"results": results, "region": REGION}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310
        pass
