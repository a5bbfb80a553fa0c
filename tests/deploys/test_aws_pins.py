"""`aws:` pins the account and region the apps live in: a deploy, a rollback or an undo
from anywhere else is refused before AWS is asked to change anything.

The bot runs in us-east-1 on moto's account (123456789012). A pipeline runner whose
AWS_REGION is eu-west-1 finds a cluster and service of the same names there (a second
region of the same app): without a pin, `opsbot deploy` would change that one and
record it as a deploy of api/staging.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from bot.adapters.aws import STS_LOOK_S
from bot.app import build_runtime
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.deploys.errors import DeployRefused
from bot.deploys.models import ROLLBACK, Deployment
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from bot.settings import Settings
from sandbox.ecs_rollouts import ACCOUNT
from tests.deploys.conftest import deploy_config
from tests.deploys.world import World, manifest, task_definition

OTHER_REGION = "eu-west-1"
OTHER_ACCOUNT = "111122223333"


def pinned(**aws: str) -> Config:
    return parse_config(deploy_config(aws=aws))


@pytest.fixture
def elsewhere(moto_server: str, world: World) -> Callable[[str], Any]:
    """api/staging's twin in eu-west-1: the same repository, cluster and service names."""
    from bot.adapters.aws import client

    def eu(service: str) -> Any:
        return client(service, region=OTHER_REGION, endpoint_url=moto_server)

    uri = eu("ecr").create_repository(repositoryName="api")["repository"]["repositoryUri"]
    for n, tag in enumerate(["1.0.0", "1.0.1", "1.0.2"]):
        eu("ecr").put_image(repositoryName="api", imageManifest=manifest(n), imageTag=tag)
    eu("ecs").create_cluster(clusterName="staging")
    image = f"{uri}@{world.digests['1.0.0']}"
    arn = eu("ecs").register_task_definition(**task_definition("api-staging", image))[
        "taskDefinition"
    ]["taskDefinitionArn"]
    eu("ecs").create_service(
        cluster="staging", serviceName="api", taskDefinition=arn, desiredCount=1
    )
    return eu


def running_there(eu: Callable[[str], Any]) -> str:
    services = eu("ecs").describe_services(cluster="staging", services=["api"])["services"]
    return str(services[0]["taskDefinition"])


@pytest.fixture
def runner(
    aws_settings: Settings, clock: ManualClock, releases: Any
) -> Iterator[Callable[[Config], Runtime]]:
    """The runtime `opsbot deploy` builds on a pipeline runner whose AWS_REGION is eu-west-1."""
    started: list[Runtime] = []

    def make(config: Config) -> Runtime:
        settings = aws_settings.model_copy(update={"aws_region": OTHER_REGION})
        runtime = build_runtime(settings, config, clock=clock, run_jobs=False)
        runtime.start()
        started.append(runtime)
        return runtime

    yield make
    for runtime in started:
        runtime.stop()


def cli_request(**more: Any) -> Request:
    return Request(app="api", env="staging", actor="U0ALICE", cli_identity="github:octocat", **more)


def refusals(runtime: Runtime) -> list[AuditRecord]:
    with runtime.sessions() as db:
        return list(
            db.scalars(sa.select(AuditRecord).where(AuditRecord.outcome == "refused")).all()
        )


def deployments(runtime: Runtime) -> list[Deployment]:
    with runtime.sessions() as db:
        return list(db.scalars(sa.select(Deployment)).all())


def test_a_run_in_another_region_is_refused_naming_both_regions(
    runner: Callable[[Config], Runtime], elsewhere: Callable[[str], Any], world: World
) -> None:
    cli = runner(pinned(region="us-east-1"))
    before_there, before_here = running_there(elsewhere), world.service_task_definition("staging")

    with pytest.raises(DeployRefused) as refused:
        submit(cli, cli_request(tag="1.0.2"))

    text = str(refused.value)
    assert text.startswith("`api/staging` cannot be changed from here:")
    assert "AWS region is eu-west-1 (AWS_REGION), not us-east-1 (aws.region)" in text
    assert running_there(elsewhere) == before_there
    assert world.service_task_definition("staging") == before_here
    assert deployments(cli) == []
    [audited] = refusals(cli)
    assert (audited.action, audited.target) == ("deploy.request", "deploy:api/staging")
    assert "eu-west-1" in audited.detail["reason"]


def test_credentials_of_another_account_are_refused_naming_both_accounts(
    make_runtime: Callable[..., Runtime], world: World
) -> None:
    runtime = make_runtime(pinned(account_id=OTHER_ACCOUNT, region="us-east-1"))
    before = world.service_task_definition("staging")

    for request in (
        Request(app="api", env="staging", actor="U0ALICE", tag="1.0.2"),
        Request(app="api", env="staging", actor="U0ALICE", kind=ROLLBACK),
    ):
        with pytest.raises(DeployRefused) as refused:
            submit(runtime, request)
        assert (
            f"AWS credentials are of account {ACCOUNT}, not {OTHER_ACCOUNT} (aws.account_id)"
        ) in str(refused.value)

    assert world.service_task_definition("staging") == before
    assert deployments(runtime) == []
    assert [r.action for r in refusals(runtime)] == ["deploy.request", "rollback.request"]


def calls_to_sts(runtime: Runtime) -> list[str]:
    calls: list[str] = []
    runtime.aws.get("sts", timeout_s=STS_LOOK_S).meta.events.register(
        "before-call.sts.GetCallerIdentity", lambda **_: calls.append("GetCallerIdentity")
    )
    return calls


def test_the_pinned_account_and_region_deploy_asking_sts_once(
    make_runtime: Callable[..., Runtime], world: World
) -> None:
    runtime = make_runtime(pinned(account_id=ACCOUNT, region="us-east-1"))
    calls = calls_to_sts(runtime)

    first = submit(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.1"))
    world.rollouts.complete("staging")
    runtime.scheduler.run_due(runtime.clock.now())
    with pytest.raises(DeployRefused):  # planned again, refused for another reason
        submit(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="9.9.9"))

    assert first.deployment_id is not None
    assert calls == ["GetCallerIdentity"]


def test_without_a_pin_sts_is_never_asked(
    make_runtime: Callable[..., Runtime], world: World
) -> None:
    runtime = make_runtime()
    calls = calls_to_sts(runtime)
    accepted = submit(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.1"))
    assert accepted.deployment_id is not None
    assert calls == []
