"""Home refreshes that Slack does not answer, and what changed while no instance led.

A publish that gets no answer (a reset or timed-out connection) is counted and
logged, ends the round, and leaves its viewer and the round's rest owed; one
Slack refuses is logged with Slack's error code. A new leader's first look
counts as a change: what changed while none led reaches the open Home tabs.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterator

import pytest

from bot.adapters.slack import web_client
from bot.clock import ManualClock
from bot.config import HomeSettings, parse_config
from bot.home import service as home
from bot.home.flows import HomeViews
from bot.home.jobs import HomeRefresher
from bot.observability.metrics import Metrics
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import SLACK_TOKEN
from tests.home.test_home import HOME_CONFIG, open_home, publishes
from tests.incidents.helpers import T0, outbox_idle, send_alarm
from tests.support import LiveService, wait_for

SETTINGS = HomeSettings(refresh_interval_s=0, debounce_s=0, max_refreshes_per_min=50)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def service(
    settings: Settings,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    clock: ManualClock,
) -> Iterator[LiveService]:
    stamped_by, sns_signer.clock = sns_signer.clock, clock
    yield make_service(settings, parse_config(HOME_CONFIG), clock=clock, run_jobs=False)
    sns_signer.clock = stamped_by


def errors(metrics: Metrics, why: str = "refresh") -> float:
    return float(metrics.home_publishes.labels(why, "error")._value.get())


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def refresher(
    service: LiveService, clock: ManualClock, slack: SlackEmulator, metrics: Metrics
) -> Iterator[HomeRefresher]:
    """The runtime's Home on a kept-alive client of its own that gives up after a second."""
    views = service.runtime.home.views  # type: ignore[union-attr]
    client = web_client(
        token=SLACK_TOKEN,
        base_url=slack.api_url,
        tls=ssl.create_default_context(),
        timeout_s=1,
        retries=False,
    )
    yield HomeRefresher(
        views=HomeViews(
            sessions=views.sessions,
            rights=views.rights,
            people=views.people,
            oncall=views.oncall,
            maintenance=views.maintenance,
            slack=client,
            clock=clock,
            metrics=metrics,
        ),
        settings=SETTINGS,
        clock=clock,
        is_leader=lambda: True,
    )
    client.close()


def test_a_publish_slack_does_not_answer_keeps_its_viewer_and_the_rest_owed(
    service: LiveService,
    refresher: HomeRefresher,
    metrics: Metrics,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for user in ("U0ALICE", "U0BOB"):
        open_home(service, slack, user)
    # Someone who opened Home and has left Slack since: Slack refuses their view.
    with service.runtime.sessions() as db_session:
        home.opened(db_session, user_id="U0GONE", now=T0)
        db_session.commit()
    refresher.tick()  # the first look: each view is as published (U0GONE's is refused)
    assert errors(metrics) == 1
    assert "App Home of U0GONE not published: user_not_found" in caplog.text
    assert list(refresher._owed) == []  # refused: not asked again until the next change

    send_alarm(service, sns_signer, "prod-api-5xx", "ALARM", T0)
    wait_for(lambda: outbox_idle(service))
    slack.faults.hang_next(1, seconds=1.5, calls=("views.publish",))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bot.home.flows"):
        assert refresher.tick() == []
    assert errors(metrics) == 2
    assert "not published: TimeoutError" in caplog.text
    assert sorted(refresher._owed) == ["U0ALICE", "U0BOB", "U0GONE"]

    published = refresher.tick()
    assert sorted(published) == ["U0ALICE", "U0BOB"]
    for user in ("U0ALICE", "U0BOB"):
        assert "prod-api-5xx" in str(slack.home_of(user))


def test_a_home_opened_while_slack_does_not_answer_is_refreshed_later(
    refresher: HomeRefresher, metrics: Metrics, slack: SlackEmulator
) -> None:
    slack.faults.hang_next(1, seconds=1.5, calls=("views.publish",))
    assert refresher.opened("U0ALICE") == "unanswered"
    assert errors(metrics, "opened") == 1
    assert list(refresher._owed) == ["U0ALICE"]
    assert refresher.tick() == ["U0ALICE"]


def test_a_change_made_while_no_instance_led_reaches_open_home_tabs(
    service: LiveService,
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
) -> None:
    open_home(service, slack, "U0ALICE")
    assert "Open incidents (0)" in str(slack.home_of("U0ALICE"))
    # An incident opens while no instance leads; then one does, its refresher new.
    send_alarm(service, sns_signer, "prod-api-5xx", "ALARM", T0)
    wait_for(lambda: outbox_idle(service))
    leader = HomeRefresher(
        views=service.runtime.home.views,  # type: ignore[union-attr]
        settings=SETTINGS,
        clock=clock,
        is_leader=lambda: True,
    )
    assert leader.tick() == ["U0ALICE"]
    assert "Open incidents (1)" in str(slack.home_of("U0ALICE"))
    assert leader.tick() == []
    # Bob's Home, as published, still holds: not sent again.
    open_home(service, slack, "U0BOB")
    before = publishes(slack, "U0BOB")
    assert (
        HomeRefresher(
            views=service.runtime.home.views,  # type: ignore[union-attr]
            settings=SETTINGS,
            clock=clock,
            is_leader=lambda: True,
        ).tick()
        == []
    )
    assert publishes(slack, "U0BOB") == before
