"""/deploy history's count, through the signed door: any number typed gets an answer.

Python's int() refuses a string of more than 4,300 digits (ValueError); a count
is a few digits at most, and anything else is answered with the usage.
"""

from __future__ import annotations

from sandbox.slack import SlackEmulator
from tests.deploys.test_slack import answered, command
from tests.deploys.world import World
from tests.support import LiveService

USAGE = (
    "`/deploy history &lt;app&gt; &lt;env&gt; [n]`: n is a number of deployments "
    "(at most 50 are shown)."
)


def test_a_count_of_thousands_of_digits_is_answered_with_the_usage(
    live: LiveService, releases: SlackEmulator, world: World
) -> None:
    for typed in ("9" * 4400, "9" * 11, "0", "#5", "²"):
        ack, _ = command(live, releases, "/deploy", f"history api staging {typed}")
        assert ack["text"].startswith(USAGE), typed[:20]

    _, url = command(live, releases, "/deploy", "history api staging 2147483647")
    assert answered(releases, url) == "No deployments of `api/staging` yet."
