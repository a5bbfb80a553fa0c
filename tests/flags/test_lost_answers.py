"""AWS carries out a flag write but its answer comes too late: botocore retries it.

The front door (moto and the AppConfig stand-in) does the call, then holds its
answer past the client's read timeout (lowered to 1 s here), as a network that
drops an answer would: botocore's standard retry sends the call again, and the
retry meets what the first try did (a ConflictException, a value already
written). What opsbot says, audits and watches must be what AWS did.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

import bot.adapters.aws as aws_adapter
from bot.clock import ManualClock
from bot.deploys.models import FAILED
from bot.flags import flows
from bot.flags.errors import FlagFailed
from bot.runtime import Runtime
from sandbox.appconfig import _error
from sandbox.server import HttpRequest, HttpResponse
from sandbox.slack import SlackEmulator
from tests.deploys.world import World
from tests.flags import test_ssm
from tests.flags.conftest import FlagWorld
from tests.flags.test_appconfig import audits, change, confirm, thread, tick
from tests.flags.test_undeployed import deploy_version

LATE_S = 1.8  # an answer held this long misses the 1 s read timeout


@pytest.fixture
def short_timeouts(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aws_adapter, "DEFAULT_READ_TIMEOUT_S", 1.0)
    runtime.aws._clients.clear()  # built again, with the short read timeout


def answered_late(
    handle: Callable[[HttpRequest], HttpResponse | None],
    matches: Callable[[HttpRequest], bool],
    *,
    times: int,
) -> Callable[[HttpRequest], HttpResponse | None]:
    """`handle`, whose answer to the first `times` matching calls comes after the timeout."""
    late = {"left": times}

    def held(request: HttpRequest) -> HttpResponse | None:
        answer = handle(request)  # done: AWS carried it out
        if matches(request) and late["left"] > 0:
            late["left"] -= 1
            time.sleep(LATE_S)
        return answer

    return held


def refusing(
    handle: Callable[[HttpRequest], HttpResponse | None],
    matches: Callable[[HttpRequest], bool],
    answer: HttpResponse,
) -> Callable[[HttpRequest], HttpResponse | None]:
    def refused(request: HttpRequest) -> HttpResponse | None:
        return answer if matches(request) else handle(request)

    return refused


def start_deployment(request: HttpRequest) -> bool:
    return request.method == "POST" and request.path.endswith("/deployments")


def list_deployments(request: HttpRequest) -> bool:
    return request.method == "GET" and request.path.endswith("/deployments")


def get_deployment(request: HttpRequest) -> bool:
    return request.method == "GET" and "/deployments/" in request.path


def ssm_call(operation: str) -> Callable[[HttpRequest], bool]:
    return lambda request: request.headers.get("x-amz-target") == f"AmazonSSM.{operation}"


# -- StartDeployment -----------------------------------------------------------------------


def test_a_deployment_started_whose_answer_was_lost_is_audited_announced_and_watched(
    runtime: Runtime,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    short_timeouts: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deploy_version(flag_world, clock)
    held = answered_late(flag_world.gaps.handle, start_deployment, times=1)
    monkeypatch.setattr(flag_world.gaps, "handle", held)
    flows.submit(runtime, change("on", "apple_pay"))

    answer = confirm(runtime)

    # The retry met AppConfig's ConflictException: the deployment in progress is its own.
    started = sorted(
        (d["DeploymentNumber"], d["ConfigurationVersion"]) for d in flag_world.deployments()
    )
    assert started == [(1, "1"), (2, "2")]
    assert "version 2 written, AppConfig deployment 2 started" in answer
    assert "answer to StartDeployment was lost" in answer
    assert "not deployed" not in answer
    [line] = audits(runtime, "flag.change")
    assert (line.outcome, line.detail["version"], line.detail["deployment"]) == ("ok", 2, 2)
    assert line.detail["start_unanswered"] == "ConflictException"
    for _ in range(30):  # 2 minutes deploying, 1 baking, looked at every 10 s
        tick(runtime, clock)
    [end] = audits(runtime, "flag.deployment")
    assert (end.outcome, end.detail["deployment"]) == ("ok", 2)
    assert thread(releases, containing="deployment 2 is COMPLETE")


def test_a_lost_start_that_cannot_be_looked_up_says_it_may_have_started(
    runtime: Runtime,
    flag_world: FlagWorld,
    clock: ManualClock,
    short_timeouts: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deploy_version(flag_world, clock)
    denied = _error(403, "AccessDeniedException", "not authorized to perform ListDeployments")
    held = answered_late(flag_world.gaps.handle, start_deployment, times=1)
    started = {"n": 0}

    def handle(request: HttpRequest) -> HttpResponse | None:
        """ListDeployments is refused once a start was asked (an IAM change meanwhile)."""
        started["n"] += start_deployment(request)
        if list_deployments(request) and started["n"]:
            return denied
        return held(request)

    monkeypatch.setattr(flag_world.gaps, "handle", handle)
    flows.submit(runtime, change("on", "apple_pay"))

    said = confirm(runtime)  # the click's answer: what the requester reads

    assert "may have started deploying version 2" in said
    assert "Nothing changed" not in said
    [line] = audits(runtime, "flag.change")
    assert (line.outcome, line.detail["version"], line.detail["may_have_started"]) == (
        "failed",
        2,
        True,
    )


# -- CreateHostedConfigurationVersion ------------------------------------------------------


def test_a_version_written_whose_answer_was_lost_is_named_not_blamed_on_someone(
    runtime: Runtime,
    flag_world: FlagWorld,
    clock: ManualClock,
    short_timeouts: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deploy_version(flag_world, clock)
    create_version = lambda request: (  # noqa: E731
        request.method == "POST" and request.path.endswith("/hostedconfigurationversions")
    )
    held = answered_late(flag_world.front_door._forward, create_version, times=1)
    monkeypatch.setattr(flag_world.front_door, "_forward", held)
    flows.submit(runtime, change("on", "apple_pay"))

    said = confirm(runtime)  # the click's answer: what the requester reads

    assert flag_world.versions() == [1, 2]
    assert "version 2 was written, but AWS's answer to the write was lost" in said
    assert "not deployed" in said
    assert "Someone" not in said
    [line] = audits(runtime, "flag.change")
    assert (line.outcome, line.detail["version"]) == ("failed", 2)
    assert [d["ConfigurationVersion"] for d in flag_world.deployments()] == ["1"]


# -- SSM PutParameter ----------------------------------------------------------------------


def test_an_ssm_write_whose_answers_were_all_lost_is_read_back_and_rolled_out(
    runtime: Runtime,
    flag_world: FlagWorld,
    world: World,
    clock: ManualClock,
    short_timeouts: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every try lands; none is answered in time.
    held = answered_late(flag_world.front_door._forward, ssm_call("PutParameter"), times=99)
    monkeypatch.setattr(flag_world.front_door, "_forward", held)

    answer = flows.submit(runtime, test_ssm.change("on", "apple_pay"))

    assert "`APPLE_PAY` of `api/staging` is now *true*" in answer
    assert "answer to the write was lost" in answer
    assert flag_world.ssm_value("APPLE_PAY") == "true"
    [line] = audits(runtime, "flag.change")
    assert line.outcome == "ok"
    assert line.detail["write_unanswered"] == "ReadTimeoutError"
    [roll] = test_ssm.deployments(runtime)
    assert roll.status != FAILED
    assert line.detail["deployment"] == roll.id


def test_an_ssm_write_lost_and_unreadable_says_it_may_have_been_written(
    runtime: Runtime,
    flag_world: FlagWorld,
    world: World,
    clock: ManualClock,
    short_timeouts: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    denied = HttpResponse.json(
        {"__type": "AccessDeniedException", "message": "not authorized to GetParameter"},
        400,
        {"x-amzn-ErrorType": "AccessDeniedException"},
    )
    forward = flag_world.front_door._forward
    held = answered_late(forward, ssm_call("PutParameter"), times=99)
    monkeypatch.setattr(
        flag_world.front_door, "_forward", refusing(held, ssm_call("GetParameter"), denied)
    )

    with pytest.raises(FlagFailed) as failed:
        flows.submit(runtime, test_ssm.change("on", "apple_pay"))

    said = str(failed.value)
    assert "it may have been written" in said
    assert "Nothing was written" not in said
    [line] = audits(runtime, "flag.change")
    assert (line.outcome, line.detail["may_have_written"]) == ("failed", True)
    [roll] = test_ssm.deployments(runtime)
    assert roll.status == FAILED
    assert roll.outcome.startswith("The service was not restarted:")
    assert "Nothing changed" not in roll.outcome


# -- a watch that cannot read its deployment -----------------------------------------------


def test_a_watch_that_cannot_read_its_deployment_says_so_once_and_keeps_watching(
    runtime: Runtime,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deploy_version(flag_world, clock)
    flows.submit(runtime, change("on", "apple_pay"))
    confirm(runtime)
    handle = flag_world.gaps.handle
    denied = _error(403, "AccessDeniedException", "not authorized to GetDeployment")
    monkeypatch.setattr(flag_world.gaps, "handle", refusing(handle, get_deployment, denied))

    for _ in range(6 * 30):  # half an hour of looks; stuck_after_min is 10
        tick(runtime, clock)

    said = thread(releases, containing="cannot read AppConfig deployment 2")
    told = [t for t in said if "cannot read AppConfig deployment 2" in t]
    assert len(told) == 1
    assert "AccessDeniedException" in told[0]
    stuck = runtime.metrics.registry.get_sample_value(
        "opsbot_flag_changes_total", {"outcome": "stuck"}
    )
    assert stuck == 1.0
    assert any(j.startswith("flag-watch-") for j, _ in runtime.scheduler.pending())

    monkeypatch.setattr(flag_world.gaps, "handle", handle)  # IAM fixed
    tick(runtime, clock)
    [end] = audits(runtime, "flag.deployment")
    assert (end.outcome, end.detail["deployment"]) == ("ok", 2)
    assert not any(j.startswith("flag-watch-") for j, _ in runtime.scheduler.pending())
