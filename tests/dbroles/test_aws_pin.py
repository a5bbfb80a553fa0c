"""`aws:` pins the account and region the apps live in: a provision from a process whose
AWS_REGION points elsewhere is refused before any role manager is invoked, as a deploy
or a flag change is (tests/deploys/test_aws_pins.py)."""

from __future__ import annotations

from collections.abc import Callable

from bot.clock import ManualClock
from bot.config import parse_config
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from tests.dbroles.conftest import RELEASES, T0, LambdaWorld, dbrole_config
from tests.dbroles.test_dbroles import ask, audits
from tests.support import LiveService


def test_a_provision_pinned_to_another_region_is_refused_and_invokes_nothing(
    settings: Settings,
    slack: SlackEmulator,
    lambdas: LambdaWorld,
    make_service: Callable[..., LiveService],
) -> None:
    slack.add_channel(RELEASES, "releases")
    raw = dbrole_config(lambdas.database.dbname)
    raw["aws"] = {"region": "eu-west-1"}
    aws_settings = settings.model_copy(update={"aws_endpoint_url": lambdas.endpoint})
    live = make_service(aws_settings, parse_config(raw), clock=ManualClock(T0), run_jobs=False)

    text = ask(live, slack, "provision shop staging")

    assert text == (
        "The database roles of `shop/staging` cannot be provisioned from here: opsbot's AWS "
        "region is us-east-1 (AWS_REGION), not eu-west-1 (aws.region). Nothing was changed."
    )
    assert lambdas.staging.events == [] and lambdas.database.roles() == []
    [(actor, action, _target, outcome, _detail)] = audits(live)
    assert (actor, action, outcome) == ("U0ALICE", "dbrole.provision", "refused")
