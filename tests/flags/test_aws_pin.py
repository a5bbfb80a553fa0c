"""`aws:` pins the account and region the apps live in: a flag change from a process
whose AWS_REGION or credentials point elsewhere is refused before anything is read or
written, as a deploy is (tests/deploys/test_aws_pins.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.config import Config, parse_config
from bot.flags import flows
from bot.flags.errors import FlagRefused
from bot.runtime import Runtime
from tests.flags.conftest import FlagWorld, flag_config
from tests.flags.test_appconfig import audits, change


@pytest.mark.parametrize(
    ("pin", "said"),
    [
        ({"region": "eu-west-1"}, "region is us-east-1 (AWS_REGION), not eu-west-1 (aws.region)"),
        ({"account_id": "111122223333"}, "not 111122223333 (aws.account_id)"),
    ],
    ids=["region", "account"],
)
def test_a_flag_change_pinned_elsewhere_is_refused_and_writes_nothing(
    make_runtime: Callable[[Config], Runtime],
    flag_world: FlagWorld,
    pin: dict[str, str],
    said: str,
) -> None:
    raw = flag_config(flag_world)
    raw["aws"] = pin
    runtime = make_runtime(parse_config(raw))
    versions = flag_world.versions()
    with pytest.raises(FlagRefused, match="cannot be changed from here") as refused:
        flows.submit(runtime, change("on", "apple_pay"))
    assert said in str(refused.value)
    assert flag_world.versions() == versions
    [audit] = audits(runtime, "flag.change")
    assert audit.outcome == "refused"


def test_a_flag_change_pinned_where_it_runs_goes_ahead(
    make_runtime: Callable[[Config], Runtime], flag_world: FlagWorld
) -> None:
    raw = flag_config(flag_world)
    raw["aws"] = {"region": "us-east-1", "account_id": "123456789012"}
    runtime = make_runtime(parse_config(raw))
    assert "cannot be changed from here" not in flows.submit(runtime, change("on", "apple_pay"))
