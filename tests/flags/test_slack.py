"""/flag through Slack's HTTP edge: usage on bad input, answers, the confirmation button.

Requests are signed as Slack signs them and posted to the live service; the
answers come back through the Slack emulator.
"""

from __future__ import annotations

from bot.clock import ManualClock
from sandbox.slack import SlackEmulator
from tests.deploys.test_slack import answered, buttons, click, command, confirmation
from tests.flags.conftest import FlagWorld
from tests.support import LiveService


def test_a_mistyped_command_answers_its_usage(
    live: LiveService, releases: SlackEmulator, flag_world: FlagWorld
) -> None:
    ack, _ = command(live, releases, "/flag", "flip api prod apple_pay")
    assert ack["text"].startswith("`/flag flip` is not a /flag command.")
    assert (
        "`/flag set &lt;app&gt; &lt;env&gt; &lt;flag&gt; &lt;attribute&gt;=&lt;value&gt; [...]`"
        in ack["text"]
    )
    ack, _ = command(live, releases, "/flag", "set api prod new_checkout_flow rollout_percent")
    assert ack["text"].startswith("`rollout_percent` is not `<attribute>=<value>`.")
    ack, _ = command(live, releases, "/flag", "on api prod")
    assert ack["text"].startswith("`/flag on &lt;app&gt; &lt;env&gt; &lt;flag&gt;`.")
    ack, _ = command(live, releases, "/flag", "help")  # typed bare, /flag opens its modal
    assert ack["text"].startswith("*/flag* — List or change feature flags")
    assert flag_world.versions() == [1]


def test_list_and_an_unknown_environment(
    live: LiveService, releases: SlackEmulator, flag_world: FlagWorld
) -> None:
    _, url = command(live, releases, "/flag", "list api prod")
    assert "`new_checkout_flow` (New checkout flow) *on*" in answered(releases, url)
    _, url = command(live, releases, "/flag", "list api qa")
    assert answered(releases, url) == (
        "Unknown environment `qa` of `api`. Environments: `prod`, `staging`."
    )


def test_a_protected_change_is_confirmed_with_the_button(
    live: LiveService, releases: SlackEmulator, flag_world: FlagWorld, clock: ManualClock
) -> None:
    ack, url = command(live, releases, "/flag", "set api prod new_checkout_flow rollout_percent=50")
    assert ack["text"].startswith(":hourglass_flowing_sand: Checking `new_checkout_flow`")
    assert "request #1 waits for your confirmation" in answered(releases, url)
    message = confirmation(releases)
    assert "rollout_percent=50" in str(message.blocks)
    assert buttons(message) == ["approval_confirm", "approval_cancel"]
    assert flag_world.versions() == [1]
    url = click(live, releases, "approval_confirm", 1, user="U0ALICE")
    assert "version 2 written, AppConfig deployment 1 started" in answered(releases, url)
    assert flag_world.document(2)["values"]["new_checkout_flow"]["rollout_percent"] == 50


def test_a_wrong_type_is_answered_and_nothing_is_written(
    live: LiveService, releases: SlackEmulator, flag_world: FlagWorld
) -> None:
    _, url = command(live, releases, "/flag", "set api prod new_checkout_flow rollout_percent=half")
    assert answered(releases, url) == (
        "`new_checkout_flow.rollout_percent` is a number from 0 to 100; `half` is not."
    )
    assert flag_world.versions() == [1]
