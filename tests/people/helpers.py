"""A people directory on the test database, the Slack and PagerDuty emulators on loopback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from slack_sdk import WebClient

from bot.adapters.pagerduty import rest_client
from bot.clock import ManualClock
from bot.db.engine import make_sessionmaker
from bot.pagerduty.rest import PagerDutyRest
from bot.people.directory import PeopleDirectory
from bot.rights.workspace import Workspace
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.tls import TestCA
from tests.conftest import PD_API_TOKEN

CACHE_H = 24.0


@dataclass
class Ticks:
    """A monotonic clock the test moves."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    people: PeopleDirectory
    workspace: Workspace
    clock: ManualClock
    ticks: Ticks


def make_world(
    engine: sa.Engine, slack: SlackEmulator, pagerduty: PagerDutyEmulator, test_ca: TestCA
) -> World:
    clock = ManualClock(datetime(2026, 3, 2, 9, tzinfo=UTC))
    ticks = Ticks()
    client = WebClient(token=slack.token, base_url=slack.api_url)
    workspace = Workspace(client, monotonic=ticks)
    rest = PagerDutyRest(
        rest_client(
            PD_API_TOKEN,
            base_url=pagerduty.url,
            tls=test_ca.client_context(),
            timeout_s=2.0,
            default_from=None,
        )
    )
    people = PeopleDirectory(
        sessions=make_sessionmaker(engine),
        slack=client,
        pagerduty=rest,
        clock=clock,
        cache_h=CACHE_H,
        workspace=workspace,
        monotonic=ticks,
    )
    return World(people=people, workspace=workspace, clock=clock, ticks=ticks)


def deactivate(slack: SlackEmulator, user_id: str) -> None:
    with slack.lock:  # as users.info and users.lookupByEmail show a deactivated account
        slack.users[user_id]["deleted"] = True
