"""PagerDuty user -> Slack user: a lookup is trusted for `people_cache_h`, then asked
again; a deactivated Slack account is named by nobody, a link made by hand included.

The person named is the one `/oncall`, the handoff and Home show, and the one an
incident channel invites (bot/incidents/channels.py, through `first_responders`).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bot.pagerduty.webhooks import Reference
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.tls import TestCA
from tests.people.helpers import CACHE_H, World, deactivate, make_world

SEAT = Reference(id="PSEAT", name="Carol Example")


@pytest.fixture
def world(
    engine: sa.Engine, slack: SlackEmulator, pagerduty: PagerDutyEmulator, test_ca: TestCA
) -> World:
    slack.add_user("U0CAROL", "carol", email="carol@example.com")
    slack.add_user("U0DAVE", "dave", email="dave@example.com")
    pagerduty.add_user("PSEAT", "Carol Example", "carol@example.com")
    return make_world(engine, slack, pagerduty, test_ca)


def later(world: World, hours: float) -> None:
    world.clock.advance(hours=hours)
    world.ticks.now += hours * 3600


def test_a_reassigned_seat_names_its_new_person_once_the_lookup_is_old(
    world: World, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    assert world.people.display(SEAT) == "<@U0CAROL>"
    # The PagerDuty seat is handed to Dave: renamed, another email.
    pagerduty.add_user("PSEAT", "Dave Example", "dave@example.com")
    later(world, CACHE_H / 2)
    assert world.people.display(SEAT) == "<@U0CAROL>"  # trusted for the cache age
    assert len(slack.calls_to("users.lookupByEmail")) == 1

    later(world, CACHE_H / 2 + 1)
    assert world.people.display(SEAT) == "<@U0DAVE>"
    assert world.people.display(SEAT) == "<@U0DAVE>"
    assert len(slack.calls_to("users.lookupByEmail")) == 2
    # Carol's old lookup is gone both ways: she is looked up afresh when she acts.
    assert world.people.current_link("U0CAROL") is None


def test_a_deactivated_slack_account_is_named_by_nobody_and_its_lookup_dropped(
    world: World, slack: SlackEmulator
) -> None:
    assert world.people.display(SEAT) == "<@U0CAROL>"
    deactivate(slack, "U0CAROL")
    later(world, CACHE_H + 1)
    assert world.people.display(SEAT) == "Carol Example"
    assert world.people.current_link("U0CAROL") is None
    # Nobody found is not asked about again at once.
    asked = len(slack.calls_to("users.lookupByEmail"))
    assert world.people.display(SEAT) == "Carol Example"
    assert len(slack.calls_to("users.lookupByEmail")) == asked


def test_a_link_made_by_hand_holds_while_its_account_is_active(
    world: World, slack: SlackEmulator
) -> None:
    slack.add_user("U0CARLA", "carla", email="carla@other.example")
    world.people.link("U0CARLA", "carol@example.com")
    assert world.people.display(SEAT) == "<@U0CARLA>"
    infos = len(slack.calls_to("users.info"))

    later(world, CACHE_H + 1)
    assert world.people.display(SEAT) == "<@U0CARLA>"  # checked once: still active
    assert world.people.display(SEAT) == "<@U0CARLA>"
    assert len(slack.calls_to("users.info")) == infos + 1
    assert slack.calls_to("users.lookupByEmail") == []


def test_a_link_made_by_hand_to_a_deactivated_account_is_kept_but_not_used(
    world: World, slack: SlackEmulator
) -> None:
    slack.add_user("U0CARLA", "carla", email="carla@other.example")
    world.people.link("U0CARLA", "carol@example.com")
    assert world.people.display(SEAT) == "<@U0CARLA>"
    deactivate(slack, "U0CARLA")

    later(world, CACHE_H + 1)
    # The seat's email finds its active owner instead.
    assert world.people.display(SEAT) == "<@U0CAROL>"
    infos = len(slack.calls_to("users.info"))
    assert world.people.display(SEAT) == "<@U0CAROL>"
    assert len(slack.calls_to("users.info")) == infos  # the deactivated account: not asked again
    linked = world.people.current_link("U0CARLA")
    assert linked is not None and linked[1] is True
