"""Every flag change's outcome is audited; a failure is also logged (WARNING) and counted.

`opsbot_flag_changes{outcome}` counts done, refused, failed and rolled_back,
once the outcome's audit line commits. The failures are real ones: a profile
that is not in AppConfig (moto answers ResourceNotFoundException), a
deployment strategy gone from the AppConfig stand-in, StopDeployment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from bot.approvals import flows as approvals
from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.flags import flows
from bot.flags.errors import FlagFailed, FlagRefused
from bot.observability.metrics import Metrics
from bot.runtime import Runtime
from tests.flags.conftest import FlagWorld, flag_config
from tests.flags.test_appconfig import audits, change, confirm, tick
from tests.flags.test_undeployed import confirm_newest, deploy_version, strategy_gone


def counted(runtime: Runtime) -> Metrics:
    """The registry the app counts this runtime's flag outcomes in."""
    return runtime.metrics


def count(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("opsbot_flag_changes_total", {"outcome": outcome})
    return float(value or 0)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "bot.flags.flows" and r.levelno == logging.WARNING
    ]


def test_a_deployment_in_progress_refusal_is_audited_and_counted(
    runtime: Runtime, flag_world: FlagWorld
) -> None:
    metrics = counted(runtime)
    flows.submit(runtime, change("on", "apple_pay"))
    confirm(runtime)
    flows.submit(runtime, change("on", "banner"))
    result = approvals.click(runtime, action_id=2, user_id="U0ALICE", decision="confirm").text
    assert "AppConfig deployment 1 of `api/prod` is still DEPLOYING" in result
    assert flag_world.versions() == [1, 2]
    refused = audits(runtime, "flag.change")[-1]
    assert refused.outcome == "refused" and refused.detail["flag"] == "banner"
    assert refused.detail["reason"].startswith("AppConfig deployment 1 of `api/prod` is still")
    assert count(metrics, "refused") == 1


def test_no_release_channel_to_ask_in_is_audited(
    make_runtime: Callable[[Config], Runtime], flag_world: FlagWorld
) -> None:
    raw = flag_config(flag_world)
    del raw["apps"]["api"]["environments"]["prod"]["release_channel"]
    runtime = make_runtime(parse_config(raw))
    with pytest.raises(FlagRefused, match="needs a confirmation in Slack, but has no"):
        flows.submit(runtime, change("on", "apple_pay"))  # asked outside Slack: no channel
    [refused] = audits(runtime, "flag.change")
    assert refused.outcome == "refused" and "no release_channel" in refused.detail["reason"]
    assert flag_world.versions() == [1]


def test_a_failure_while_reading_is_audited_logged_and_counted(
    make_runtime: Callable[[Config], Runtime],
    flag_world: FlagWorld,
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = flag_config(flag_world)
    raw["apps"]["api"]["environments"]["prod"]["flags"]["profile"] = "gone123"
    runtime = make_runtime(parse_config(raw))
    metrics = counted(runtime)
    with (
        caplog.at_level(logging.WARNING, logger="bot.flags.flows"),
        pytest.raises(FlagFailed, match="AWS refused to read the configuration profile"),
    ):
        flows.submit(runtime, change("on", "apple_pay"))
    [line] = warnings(caplog)
    assert line.startswith("flag change 'apple_pay on' of api/prod by U0ALICE failed reading")
    assert line.endswith("(nothing written): version -, AWS error ResourceNotFoundException")
    [failed] = audits(runtime, "flag.change")
    assert failed.outcome == "failed" and "ResourceNotFoundException" in failed.detail["reason"]
    assert count(metrics, "failed") == 1


def test_a_failed_start_is_logged_with_the_version_and_counted(
    runtime: Runtime,
    flag_world: FlagWorld,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deploy_version(flag_world, clock)
    metrics = counted(runtime)
    flows.submit(runtime, change("on", "apple_pay"))
    with caplog.at_level(logging.WARNING, logger="bot.flags.flows"), strategy_gone(flag_world):
        assert "version 2 written, not deployed" in confirm_newest(runtime)
    [line] = warnings(caplog)
    assert line == (
        "flag change 'apple_pay on' of api/prod by U0ALICE failed starting the deployment "
        "(version written, not deployed): version 2, AWS error ResourceNotFoundException"
    )
    assert count(metrics, "failed") == 1 and count(metrics, "done") == 0


def test_a_rolled_back_deployment_is_logged_and_counted_and_a_complete_one_is_done(
    runtime: Runtime,
    flag_world: FlagWorld,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deploy_version(flag_world, clock)
    metrics = counted(runtime)
    flows.submit(runtime, change("on", "apple_pay"))
    confirm(runtime)
    tick(runtime, clock)
    flag_world.aws("appconfig").stop_deployment(
        ApplicationId=flag_world.application,
        EnvironmentId=flag_world.environment,
        DeploymentNumber=2,
    )
    with caplog.at_level(logging.WARNING, logger="bot.flags.flows"):
        tick(runtime, clock)
    [line] = warnings(caplog)
    assert line.startswith(
        "flag change 'apple_pay on' of api/prod by U0ALICE: AppConfig deployment 2 of "
        "version 2 ended ROLLED_BACK (ROLLBACK_COMPLETED by USER"
    )
    assert count(metrics, "rolled_back") == 1

    flows.submit(runtime, change("on", "banner"))
    confirm_newest(runtime)
    for _ in range(20):
        tick(runtime, clock)
    assert [a.outcome for a in audits(runtime, "flag.deployment")] == ["rolled_back", "ok"]
    assert count(metrics, "done") == 1 and count(metrics, "rolled_back") == 1
