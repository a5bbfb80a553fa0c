"""A flag change whose AppConfig rollout still runs: the incident says its undo stops that
rollout (tests/flags/test_undo_stops_rollout.py). A profile's first deployment has no
version to go back to: its undo is refused until the rollout is complete, then runs."""

from __future__ import annotations

from bot.clock import ManualClock
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import CLAIMED
from tests.changes.test_changes import alarm, flip, latest, latest_text, press, undo_buttons
from tests.flags.conftest import FlagWorld
from tests.incidents.helpers import message_text
from tests.support import LiveService, wait_for

STILL = (
    "still rolling out (AppConfig deployment 1): its undo stops that deployment, and "
    "AppConfig rolls back to the version before it (a first deployment has none: its undo "
    "waits for it to complete)"
)


def test_the_undo_of_a_first_deployment_still_rolling_out_waits_for_it(
    live: LiveService,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    assert "AppConfig deployment 1 started" in flip(runtime, "on", "apple_pay", actor="U0ALICE")
    clock.advance(seconds=60)  # the alarm fires while AppConfig still deploys it
    runtime.scheduler.run_due(clock.now())  # opsbot's watch sees it deploying
    incident, message = alarm(live, sns_signer, releases, CLAIMED)

    text = message_text(message)
    assert "Flag `apple_pay` `off` → `on` by <@U0ALICE>" in text, text
    assert f"· deploying · _{STILL}_" in text, text

    button = undo_buttons(message)["Turn apple_pay off again"]
    answer = press(live, releases, button, user="U0ALICE")
    assert answer.startswith("AppConfig deployment 1 of `api/prod` is still DEPLOYING"), answer

    # Once the rollout is complete, the incident is refreshed and the undo runs.
    clock.advance(minutes=5)
    runtime.scheduler.run_due(clock.now())
    wait_for(lambda: "still rolling out" not in latest_text(releases, incident))
    button = undo_buttons(latest(releases, incident))["Turn apple_pay off again"]
    answer = press(live, releases, button, user="U0ALICE")
    assert "AppConfig deployment 2 started" in answer, answer
    assert flag_world.document()["values"]["apple_pay"] == {"enabled": False}
