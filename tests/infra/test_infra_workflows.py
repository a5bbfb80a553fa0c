"""The publish workflow builds the image of the commit it tags, and says so inside it.

build-and-publish.yml runs on `workflow_run`: the commit is the CI run's head SHA (the
event's `github.sha` is the default branch's head when CI finished). The checkout, the
image tag, the revision label and the Dockerfile's OPSBOT_BUILD_COMMIT build argument
(what `opsbot_build_info` and `/opsbot status` report) must all name that one commit.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

HEAD_SHA = "${{ github.event.workflow_run.head_sha }}"


def publish_steps(repo: Path) -> list[dict[str, Any]]:
    """The steps of build-and-publish.yml's publish job."""
    workflow = yaml.safe_load((repo / ".github/workflows/build-and-publish.yml").read_text())
    steps: list[dict[str, Any]] = workflow["jobs"]["publish"]["steps"]
    return steps


def build_step(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The docker/build-push-action step's inputs."""
    (step,) = [s for s in steps if str(s.get("uses", "")).startswith("docker/build-push-action@")]
    inputs: dict[str, Any] = step["with"]
    return inputs


def build_args(inputs: dict[str, Any]) -> dict[str, str]:
    """The step's build-args (one NAME=value a line) as a dict."""
    lines = [line.strip() for line in str(inputs.get("build-args", "")).splitlines()]
    return dict(line.split("=", 1) for line in lines if line)


def dockerfile_args(repo: Path) -> set[str]:
    """The ARG names the Dockerfile declares."""
    return set(
        re.findall(
            r"^ARG\s+([A-Za-z_][A-Za-z0-9_]*)", (repo / "Dockerfile").read_text(), re.MULTILINE
        )
    )


def test_the_workflow_runs_on_ci_runs_so_the_commit_is_their_head_sha(infra_repo: Path) -> None:
    workflow = yaml.safe_load((infra_repo / ".github/workflows/build-and-publish.yml").read_text())
    # PyYAML reads the key `on` as True (YAML 1.1).
    assert set(workflow[True]) == {"workflow_run"}
    (checkout,) = [
        s
        for s in publish_steps(infra_repo)
        if str(s.get("uses", "")).startswith("actions/checkout@")
    ]
    assert checkout["with"]["ref"] == HEAD_SHA


def test_the_image_carries_the_commit_it_is_built_from(infra_repo: Path) -> None:
    inputs = build_step(publish_steps(infra_repo))

    assert "OPSBOT_BUILD_COMMIT" in dockerfile_args(infra_repo)
    assert build_args(inputs).get("OPSBOT_BUILD_COMMIT") == HEAD_SHA, (
        "without the build argument every published image reports commit 'unknown'"
    )
    assert inputs["tags"].endswith(":" + HEAD_SHA)
    assert f"org.opencontainers.image.revision={HEAD_SHA}" in inputs["labels"].splitlines()


def test_every_build_argument_is_one_the_dockerfile_declares(infra_repo: Path) -> None:
    inputs = build_step(publish_steps(infra_repo))

    assert set(build_args(inputs)) <= dockerfile_args(infra_repo)
