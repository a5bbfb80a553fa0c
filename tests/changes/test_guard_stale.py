"""A "deploy anyway?" question holds for a while, and only for the incidents it named.

Continue clicked long after the question, or after the incidents open on the
app environment changed, does nothing and says to ask again: consent given
about one incident never covers another.
"""

from __future__ import annotations

import json

from bot.changes.guard import QUESTION_TTL
from bot.clock import ManualClock
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import CLAIMED
from tests.changes.test_changes import alarm, deployments
from tests.changes.test_guard import ask, buttons, change_events, press
from tests.deploys.world import World
from tests.incidents.helpers import command, responses_to
from tests.support import LiveService, wait_for

CONTINUE = "change_anyway:continue"
EXPIRED = "This question expired: nothing was done. Ask again."


def test_a_continue_clicked_after_the_question_expired_does_nothing(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    incident, _ = alarm(live, sns_signer, releases, CLAIMED)
    question = ask(live, releases, "/deploy", "api prod 1.0.2", user="U0ALICE")
    value = buttons(question)[CONTINUE]["value"]

    clock.advance(seconds=QUESTION_TTL.total_seconds() + 1)
    late = press(live, releases, CONTINUE, value, user="U0ALICE")
    assert late["text"] == EXPIRED
    assert deployments(live) == []
    assert change_events(live, incident) == []

    # A value of the shape before questions expired (no time, no incidents): asked again.
    old = json.loads(value)
    del old["at"], old["i"]
    old["t"] = "an-older-token-0001"
    answer = press(live, releases, CONTINUE, json.dumps(old), user="U0ALICE")
    assert answer["text"] == EXPIRED
    assert deployments(live) == []

    # Asked again, it runs.
    question = ask(live, releases, "/deploy", "api prod 1.0.2", user="U0ALICE")
    value = buttons(question)[CONTINUE]["value"]
    done = press(live, releases, CONTINUE, value, user="U0ALICE")
    assert done["text"].startswith("Deploy #1 of `api` `1.0.2` to `api/prod` started"), done


def test_a_continue_after_the_open_incidents_changed_asks_again(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    first, _ = alarm(live, sns_signer, releases, CLAIMED)
    question = ask(live, releases, "/deploy", "api prod 1.0.2", user="U0ALICE")
    value = buttons(question)[CONTINUE]["value"]

    # Before Alice clicks, the incident she was asked about is resolved and another opens.
    url = releases.response_url()
    command(live, "/incident", f"resolve {first.id} fixed", user_id="U0ALICE", response_url=url)
    wait_for(lambda: responses_to(releases, url))
    clock.advance(minutes=1)
    second, _ = alarm(live, sns_signer, releases, "prod-api-latency")
    assert second.id != first.id

    stale = press(live, releases, CONTINUE, value, user="U0ALICE")
    assert stale["text"] == (
        f"The incidents open on `api/prod` changed since you were asked (#{second.id} "
        "`prod-api-latency` is open now): nothing was done. Ask again."
    ), stale
    assert deployments(live) == []
    assert change_events(live, second) == []

    # Asked again, about the incident open now, it runs.
    question = ask(live, releases, "/deploy", "api prod 1.0.2", user="U0ALICE")
    assert question["text"].startswith(f":warning: #{second.id} `prod-api-latency` is open")
    value = buttons(question)[CONTINUE]["value"]
    done = press(live, releases, CONTINUE, value, user="U0ALICE")
    assert done["text"].startswith("Deploy #1 of `api` `1.0.2` to `api/prod` started"), done
    assert [e.actor for e in change_events(live, second)] == ["U0ALICE"]
