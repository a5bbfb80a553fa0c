"""An undo (or any later change of the flag) that AppConfig rolls back did not stay: the
change it undid is in place again, and its button comes back."""

from __future__ import annotations

from bot.clock import ManualClock
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import CLAIMED
from tests.changes.test_changes import alarm, flip, latest, latest_text, press, undo_buttons
from tests.flags.conftest import FlagWorld
from tests.support import LiveService, wait_for


def test_an_undo_rolled_back_by_appconfig_leaves_the_button_and_says_so(
    live: LiveService,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    flip(runtime, "on", "apple_pay", actor="U0ALICE")
    clock.advance(minutes=5)
    runtime.scheduler.run_due(clock.now())
    incident, message = alarm(live, sns_signer, releases, CLAIMED)
    button = undo_buttons(message)["Turn apple_pay off again"]
    clock.advance(minutes=2)
    assert "AppConfig deployment 2 started" in press(live, releases, button, user="U0BOB")
    # An AppConfig alarm monitor (the very alarm firing, often) rolls the undo back.
    flag_world.aws("appconfig").stop_deployment(
        ApplicationId=flag_world.application,
        EnvironmentId=flag_world.environment,
        DeploymentNumber=2,
    )
    for _ in range(5):
        clock.advance(seconds=10)
        runtime.scheduler.run_due(clock.now())
    wait_for(lambda: "rolled back by AppConfig" in latest_text(releases, incident))
    text = latest_text(releases, incident)
    assert "already turned off again" not in text
    assert "Flag `apple_pay` `off` → `on` by <@U0ALICE>" in text
    assert "changed again by <@U0BOB>, rolled back by AppConfig" in text
    again = undo_buttons(latest(releases, incident))
    assert list(again) == ["Turn apple_pay off again"]

    # The button works: AppConfig still deploys the version the change left.
    answer = press(live, releases, again["Turn apple_pay off again"], user="U0BOB")
    assert "AppConfig deployment 3 started" in answer, answer


def test_another_flag_changed_since_takes_the_button_with_the_reason(
    live: LiveService,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    """AppConfig deploys the whole profile: once another flag's change deployed a later
    version, the undo (pinned to the version the change left) would be refused."""
    runtime = live.runtime
    flip(runtime, "on", "apple_pay", actor="U0ALICE")
    clock.advance(minutes=5)
    runtime.scheduler.run_due(clock.now())
    flip(runtime, "on", "banner", actor="U0BOB")
    clock.advance(minutes=5)
    runtime.scheduler.run_due(clock.now())
    incident, message = alarm(live, sns_signer, releases, CLAIMED)
    text = latest_text(releases, incident)
    assert (
        "Flag `apple_pay` `off` → `on` by <@U0ALICE>" in text
        and "the flags were changed since (`banner` by <@U0BOB>): use `/flag off`" in text
    ), text
    assert list(undo_buttons(message)) == ["Turn banner off again"]
