"""What `/flag`'s acknowledgement and usage answers show back of the typed words is clipped."""

from __future__ import annotations

from sandbox.slack import SlackEmulator
from tests.deploys.test_slack import command
from tests.flags.conftest import FlagWorld
from tests.support import LiveService


def test_the_acknowledgement_clips_the_words_it_shows_back(
    live: LiveService, releases: SlackEmulator, flag_world: FlagWorld
) -> None:
    long = "f" * 5000
    for text in (f"on api prod {long}", f"set api prod x {long}", f"{long} api prod"):
        ack, _ = command(live, releases, "/flag", text)
        assert "f" * 100 not in ack["text"] and "…`" in ack["text"], ack["text"][:200]
    assert flag_world.versions() == [1]
