"""A flag's one-click undo undoes the change it names, never a later one made outside opsbot.

The undo carries the version the change left (SSM's parameter version, the
AppConfig version it deployed); the flag is changed outside opsbot the way
the console or Terraform would (PutParameter, a new hosted version and
StartDeployment on the emulators), and the click is refused, audited and
counted as a refusal, naming both versions. A check of a flag change reads
the parameters and nothing of their history.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError

from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.flags import flows
from bot.flags.requests import Change
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import CLAIMED, changes_config
from tests.changes.test_changes import alarm, flip, press, undo_buttons
from tests.changes.test_flag_rolls import roll_flag
from tests.deploys.world import World
from tests.flags.conftest import SERVICE_NAME, FlagWorld
from tests.incidents.helpers import events_of
from tests.support import LiveService

APPLE_PAY = f"/service/{SERVICE_NAME}/feature-flag/APPLE_PAY"


def undo_clicks(runtime: Runtime, kind: str, outcome: str) -> float:
    labels = {"kind": kind, "outcome": outcome}
    return float(runtime.metrics.registry.get_sample_value("opsbot_undo_total", labels) or 0)


def outcomes(runtime: Runtime, action: str) -> list[str]:
    with runtime.sessions() as db:
        query = sa.select(AuditRecord).where(AuditRecord.action == action)
        return [r.outcome for r in db.scalars(query.order_by(AuditRecord.id))]


@pytest.fixture
def ssm_prod(flag_world: FlagWorld) -> Config:
    config = changes_config(flag_world)
    prod = config["apps"]["api"]["environments"]["prod"]
    prod["flags"] = {"backend": "ssm", "service_name": SERVICE_NAME}
    return parse_config(config)


class TestSsm:
    @pytest.fixture
    def app_config(self, ssm_prod: Config) -> Config:
        return ssm_prod

    def test_an_undo_is_refused_once_the_flag_was_changed_outside_opsbot_since(
        self,
        live: LiveService,
        world: World,
        flag_world: FlagWorld,
        clock: ManualClock,
        releases: SlackEmulator,
        sns_signer: SnsSigner,
    ) -> None:
        runtime = live.runtime
        roll_flag(runtime, world, clock, "on", "apple_pay")  # opsbot writes version 2
        clock.advance(minutes=5)
        incident, message = alarm(live, sns_signer, releases, CLAIMED)
        button = undo_buttons(message)["Turn APPLE_PAY off again"]
        # Outside opsbot: turned off as a mitigation, then deliberately on again.
        ssm = flag_world.aws("ssm")
        ssm.put_parameter(Name=APPLE_PAY, Value="false", Overwrite=True, Type="String")
        ssm.put_parameter(Name=APPLE_PAY, Value="true", Overwrite=True, Type="String")

        answer = press(live, releases, button, user="U0ALICE")
        assert answer.startswith(
            "Nothing was written: `APPLE_PAY` of `api/prod` was changed after the change this "
            "undoes, which left version 2: SSM holds parameter version 4 now"
        ), answer
        assert "use `/flag off APPLE_PAY`" in answer
        assert flag_world.ssm_value("APPLE_PAY") == "true"
        assert ssm.get_parameter(Name=APPLE_PAY)["Parameter"]["Version"] == 4
        assert [e.data["status"] for e in events_of(live, incident.id) if e.kind == "undo"] == [
            "refused"
        ]
        assert outcomes(runtime, "incident.undo") == ["refused"]
        assert outcomes(runtime, "flag.change")[-1] == "refused"
        assert undo_clicks(runtime, "flag", "refused") == 1
        assert undo_clicks(runtime, "flag", "done") == 0

    def test_an_undo_of_the_version_ssm_still_holds_turns_it_back(
        self,
        live: LiveService,
        world: World,
        flag_world: FlagWorld,
        clock: ManualClock,
        releases: SlackEmulator,
        sns_signer: SnsSigner,
    ) -> None:
        roll_flag(live.runtime, world, clock, "on", "apple_pay")
        clock.advance(minutes=5)
        _, message = alarm(live, sns_signer, releases, CLAIMED)
        answer = press(
            live, releases, undo_buttons(message)["Turn APPLE_PAY off again"], user="U0ALICE"
        )
        assert "`APPLE_PAY` of `api/prod` is now *false* (parameter version 3)" in answer, answer
        assert flag_world.ssm_value("APPLE_PAY") == "false"


def deploy_outside_opsbot(flag_world: FlagWorld, document: dict[str, Any]) -> int:
    """A hosted version written and deployed as the console or Terraform would."""
    version = flag_world.write(document, "console")
    flag_world.aws("appconfig").start_deployment(
        ApplicationId=flag_world.application,
        EnvironmentId=flag_world.environment,
        DeploymentStrategyId=flag_world.strategy,
        ConfigurationProfileId=flag_world.profile,
        ConfigurationVersion=str(version),
    )
    return version


def test_an_appconfig_undo_is_refused_once_another_version_was_deployed_since(
    live: LiveService,
    world: World,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    assert "AppConfig deployment 1 started" in flip(runtime, "on", "apple_pay", actor="U0ALICE")
    ours = max(flag_world.versions())
    clock.advance(minutes=5)  # its rollout is over
    _, message = alarm(live, sns_signer, releases, CLAIMED)
    button = undo_buttons(message)["Turn apple_pay off again"]
    outside = deploy_outside_opsbot(flag_world, flag_world.document(ours))  # a re-apply
    clock.advance(minutes=5)

    answer = press(live, releases, button, user="U0ALICE")
    assert answer.startswith(
        "Nothing was written: the flags of `api/prod` were changed after the change this "
        f"undoes, which left version {ours}: version {outside} is deployed now"
    ), answer
    assert max(flag_world.versions()) == outside  # nothing written
    assert flag_world.document(outside)["values"]["apple_pay"] == {"enabled": True}
    assert len(flag_world.deployments()) == 2
    assert outcomes(runtime, "incident.undo") == ["refused"]
    assert undo_clicks(runtime, "flag", "refused") == 1


def test_a_flag_change_reads_no_parameter_history(runtime: Runtime) -> None:
    """SSM throttling GetParameterHistory (one call a flag) fails no change: it is not read."""
    asked: list[str] = []

    def throttled(**_: Any) -> None:
        asked.append("GetParameterHistory")
        error = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}
        raise ClientError(error, "GetParameterHistory")  # type: ignore[arg-type]

    runtime.aws.get("ssm").meta.events.register("before-call.ssm.GetParameterHistory", throttled)
    answer = flows.submit(
        runtime,
        Change(app="api", env="staging", actor="U0ALICE", verb="off", flag="new_checkout_flow"),
    )
    assert "`NEW_CHECKOUT_FLOW` of `api/staging` is now *false*" in answer, answer
    assert asked == []
