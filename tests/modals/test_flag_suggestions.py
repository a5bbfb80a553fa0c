"""The /flag modal suggests flags from the version a change is made from: the deployed one.

A hosted version may be written and never deployed (StartDeployment refused,
or staged in the console). `/flag set` and `/flag list` read the deployed
version and name the undeployed one; so do the modal's suggestions, each
flag's option described by its deployed state and what the newer version
does to it. AppConfig is moto behind the sandbox's front door (deployments
from `AppConfigGaps`), on the test's clock.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bot.clock import ManualClock
from bot.flags.errors import FlagFailed
from bot.modals import render, service
from bot.runtime import Runtime
from sandbox import slack_view_requests
from tests.flags.conftest import FLAGS_DOCUMENT, FlagWorld
from tests.flags.test_undeployed import deploy_version
from tests.modals.conftest import Modals
from tests.modals.test_modals import open_modal

PROD = "api/prod"


def stage_version_2(fw: FlagWorld) -> None:
    """Version 2, written by hand and not deployed: apple_pay on, banner gone, dark_mode new."""
    document: dict[str, Any] = copy.deepcopy(FLAGS_DOCUMENT)
    document["values"]["apple_pay"] = {"enabled": True}
    del document["flags"]["banner"], document["values"]["banner"]
    document["flags"]["dark_mode"] = {"name": "Dark mode"}
    document["values"]["dark_mode"] = {"enabled": True}
    assert fw.write(document, "staged in the console") == 2


def described(runtime: Runtime, target: str = PROD) -> dict[str, str | None]:
    choices = service.flag_choices(runtime, filled={service.TARGET: target}, prefix="")
    return {choice.value: choice.description for choice in choices}


def test_the_modal_suggests_the_deployed_flags_not_a_newer_undeployed_version(
    modals: Modals, flag_world: FlagWorld, clock: ManualClock
) -> None:
    deploy_version(flag_world, clock, 1)
    stage_version_2(flag_world)
    view = open_modal(modals, "/flag")
    assert modals.suggest(view, service.FLAG_NAME, "", {service.TARGET: PROD}) == [
        "apple_pay",
        "banner",
        "new_checkout_flow",
    ]
    assert modals.suggest(view, service.FLAG_NAME, "dark", {service.TARGET: PROD}) == []


def test_the_modals_options_reach_slack_with_their_descriptions(
    modals: Modals, flag_world: FlagWorld, clock: ManualClock
) -> None:
    deploy_version(flag_world, clock, 1)
    stage_version_2(flag_world)
    view = open_modal(modals, "/flag")
    body = slack_view_requests.block_suggestion(
        modals.api_view(view),
        user_id=view.user,
        action_id=service.FLAG_NAME,
        value="apple",
        values=slack_view_requests.state_values(view.view, {service.TARGET: PROD}),
    )
    [option] = modals.post(body)["options"]
    assert option["value"] == "apple_pay"
    assert option["description"]["text"] == "off (deployed v1; v2, not deployed: on)"


def test_each_option_shows_its_deployed_state_and_names_the_undeployed_version(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock
) -> None:
    deploy_version(flag_world, clock, 1)
    stage_version_2(flag_world)
    assert described(runtime) == {
        "apple_pay": "off (deployed v1; v2, not deployed: on)",
        "banner": 'off · message="hello" (deployed v1; v2, not deployed: removed)',
        "new_checkout_flow": 'on · rollout_percent=25 · variant="a" (deployed v1; v2 not deployed)',
    }
    [apple_pay] = service.flag_choices(runtime, filled={service.TARGET: PROD}, prefix="APPLE")
    assert render.option(apple_pay) == {
        "text": {"type": "plain_text", "text": "apple_pay", "emoji": True},
        "value": "apple_pay",
        "description": {
            "type": "plain_text",
            "text": "off (deployed v1; v2, not deployed: on)",
            "emoji": True,
        },
    }


def test_options_say_which_version_they_are_of_when_none_is_newer_or_none_deployed(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock
) -> None:
    assert described(runtime)["apple_pay"] == "off (v1; nothing deployed yet)"
    deploy_version(flag_world, clock, 1)  # the clock moves past what was read
    assert described(runtime)["apple_pay"] == "off (deployed v1)"
    assert described(runtime, "api/staging") == {"APPLE_PAY": "false", "NEW_CHECKOUT_FLOW": "true"}


def test_a_long_state_is_clipped_and_the_versions_stay_whole(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock
) -> None:
    deploy_version(flag_world, clock, 1)
    document: dict[str, Any] = copy.deepcopy(FLAGS_DOCUMENT)
    document["values"]["banner"]["message"] = "x" * 19
    document["values"]["banner"]["weights"] = list(range(20))
    assert flag_world.write(document, "staged") == 2
    deploy_version(flag_world, clock, 2)
    banner = described(runtime)["banner"]
    assert banner is not None and len(banner) <= render.OPTION_TEXT_MAX
    assert banner.startswith("off · message=") and banner.endswith("… (deployed v2)")


def test_keystrokes_reuse_what_was_read_for_a_while_and_a_deployment_shows_after_it(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock
) -> None:
    deploy_version(flag_world, clock, 1)
    stage_version_2(flag_world)
    assert "dark_mode" not in described(runtime)
    # Every AppConfig call fails now: the next keystrokes are answered from what was read.
    flag_world.front_door.server.faults.fail_for(600, status=400, calls=("appconfig",))
    clock.advance(seconds=service.SUGGESTIONS_TTL.total_seconds() - 1)
    assert described(runtime)["apple_pay"] == "off (deployed v1; v2, not deployed: on)"
    clock.advance(seconds=1)
    with pytest.raises(FlagFailed):
        described(runtime)
    flag_world.front_door.server.faults.clear()
    deploy_version(flag_world, clock, 2)
    assert described(runtime) == {
        "apple_pay": "on (deployed v2)",
        "dark_mode": "on (deployed v2)",
        "new_checkout_flow": 'on · rollout_percent=25 · variant="a" (deployed v2)',
    }
