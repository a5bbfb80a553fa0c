"""/flag fed by an attacker: typed flags and values, and whatever someone wrote into the
AppConfig document or an SSM parameter, reach Slack as text (no ping, no link)."""

from __future__ import annotations

import copy

from sandbox.slack import SlackEmulator
from tests.deploys.test_hostile_text import PINGS, assert_inert
from tests.deploys.test_slack import answered, click, command, confirmation
from tests.flags.conftest import FLAGS_DOCUMENT, RELEASES, SERVICE_NAME, FlagWorld
from tests.support import LiveService, wait_for


def test_typed_flags_and_values_are_echoed_inert(
    live: LiveService, releases: SlackEmulator, flag_world: FlagWorld
) -> None:
    for text in (
        "on api prod <!channel>",
        "on api staging <https://evil.example|apple_pay>",
        "set api prod banner sticky=<!here>",
        "set api prod banner regions=eu,<@U0BOB>",
        "set api prod banner <!channel>=1",
        "set api prod new_checkout_flow variant=<!everyone>",
        "set api prod new_checkout_flow rollout_percent=<!here>",
    ):
        ack, url = command(live, releases, "/flag", text)
        assert_inert(ack.get("text"))
        answer = answered(releases, url)
        assert "&lt;" in assert_inert(answer), answer
    ack, _ = command(live, releases, "/flag", "<!channel> api prod x")
    assert assert_inert(ack["text"]).startswith("`/flag &lt;!channel&gt;` is not a /flag command")
    ack, _ = command(live, releases, "/flag", "set api prod banner <!here>")
    assert assert_inert(ack["text"]).startswith("`&lt;!here&gt;` is not `<attribute>=<value>`")
    assert flag_world.versions() == [1]


def test_a_hostile_value_is_confirmed_inert_and_written_as_typed(
    live: LiveService, releases: SlackEmulator, flag_world: FlagWorld
) -> None:
    _, url = command(live, releases, "/flag", "set api prod banner message=<!channel>&x")
    assert_inert(answered(releases, url))
    message = confirmation(releases)
    shown = assert_inert(message.text, message.blocks)
    assert 'message="&lt;!channel&gt;&amp;x"' in shown
    assert flag_world.versions() == [1]

    url = click(live, releases, "approval_confirm", 1, user="U0ALICE")
    assert "version 2 written" in assert_inert(answered(releases, url))
    assert flag_world.document(2)["values"]["banner"]["message"] == "<!channel>&x"  # as typed
    announcement = wait_for(
        lambda: [m for m in releases.channel_messages(RELEASES) if "Flag banner" in m.text]
    )[0]
    assert "&lt;!channel&gt;&amp;x" in assert_inert(announcement.text, announcement.blocks)


def test_what_others_wrote_into_appconfig_and_ssm_is_listed_inert(
    live: LiveService, releases: SlackEmulator, flag_world: FlagWorld
) -> None:
    document = copy.deepcopy(FLAGS_DOCUMENT)
    document["flags"]["<!channel>"] = {"name": "<https://evil.example|Runbook>"}
    document["values"]["<!channel>"] = {"enabled": True}
    document["values"]["banner"]["message"] = "<!here>"
    flag_world.write(document, f"edited by {PINGS}")
    flag_world.aws("ssm").put_parameter(
        Name=f"/service/{SERVICE_NAME}/feature-flag/APPLE_PAY", Value=PINGS, Overwrite=True
    )

    _, url = command(live, releases, "/flag", "list api prod")
    listing = assert_inert(answered(releases, url))
    assert "`&lt;!channel&gt;` (&lt;https://evil.example|Runbook&gt;) *on*" in listing
    assert 'message="&lt;!here&gt;"' in listing
    assert "Hosted version 2: edited by &lt;!channel&gt;" in listing

    _, url = command(live, releases, "/flag", "list api staging")
    listing = assert_inert(answered(releases, url))
    assert "`APPLE_PAY` *&lt;!channel&gt; &lt;!here&gt;" in listing
