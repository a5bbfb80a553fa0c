"""One service's outage never holds every sender: the others' deliveries still go.

The outbox's senders are shared by every kind of delivery. A service that hangs
(each send held until its timeout) must not take them all, or Slack posts (the
one way on-call hears of alarms while PagerDuty is down) and pages wait behind
it. Each family of kinds keeps a sender for itself, in the worker's passes as in
claims made at once; PagerDuty's own client no longer retries a 5xx in a sender.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pagerduty as pagerduty_client
import pytest
import sqlalchemy as sa

from bot.adapters.pagerduty import events_client
from bot.clock import ManualClock
from bot.config import DeliverySettings, parse_config
from bot.db.engine import make_sessionmaker
from bot.observability.metrics import Metrics
from bot.outbox import service as outbox
from bot.outbox.models import PAGERDUTY_EVENT, SENT, SLACK_RESPONSE, Delivery
from bot.outbox.pacing import Pacer
from bot.outbox.pagerduty_sender import PagerDutySender
from bot.outbox.results import Job, Result, Retry, Sent
from bot.outbox.worker import OutboxWorker
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from sandbox.tls import TestCA
from tests.conftest import PD_ROUTING_KEY, TEST_CONFIG
from tests.outbox.test_faults import fire
from tests.support import LiveService, wait_for

WORKERS = 8
MANY = 3 * WORKERS  # more than there are senders, of each family
SETTINGS = DeliverySettings(workers=WORKERS, lease_s=60.0, poll_interval_s=0.05)


def _queue(engine: sa.Engine, clock: ManualClock, kind: str) -> None:
    """MANY answers through response_urls or MANY pages, each under its own order key."""
    with make_sessionmaker(engine)() as db_session:
        for n in range(MANY):
            if kind == SLACK_RESPONSE:
                outbox.respond(
                    db_session,
                    response_url=f"https://hooks.slack.test/commands/{n}",
                    body={"text": f"answer {n}"},
                    order_key=f"respond:{n}",
                    now=clock.now(),
                )
                continue
            outbox.pagerduty_event(
                db_session,
                routing_key_env="PD_KEY_PROD",
                dedup_key=f"alarm-{n}",
                action="trigger",
                body={"payload": {"summary": f"alarm {n}", "source": "x", "severity": "critical"}},
                now=clock.now(),
            )
        db_session.commit()


def _sent(engine: sa.Engine, kind: str) -> int:
    with make_sessionmaker(engine)() as db_session:
        query = sa.select(sa.func.count()).where(Delivery.kind == kind, Delivery.status == SENT)
        return int(db_session.scalar(query) or 0)


class _Service:
    """A fake service's sender: each send hangs until `back` is set, unless it `hangs` not."""

    def __init__(self, *, hangs: bool) -> None:
        self.back = threading.Event()
        if not hangs:
            self.back.set()
        self.hanging = 0
        self.answered = 0
        self._lock = threading.Lock()

    def send(self, job: Job) -> Result:
        with self._lock:
            self.hanging += 1
        self.back.wait(30)
        with self._lock:
            self.hanging -= 1
            self.answered += 1
        return Sent()


@pytest.mark.parametrize("down", [SLACK_RESPONSE, PAGERDUTY_EVENT])
def test_a_service_that_hangs_leaves_senders_for_the_others(engine: sa.Engine, down: str) -> None:
    clock = ManualClock()
    services = {kind: _Service(hangs=kind == down) for kind in (SLACK_RESPONSE, PAGERDUTY_EVENT)}
    up = PAGERDUTY_EVENT if down == SLACK_RESPONSE else SLACK_RESPONSE
    _queue(engine, clock, down)
    worker = OutboxWorker(
        sessions=make_sessionmaker(engine),
        senders={kind: service.send for kind, service in services.items()},
        pacer=Pacer(lambda lane: (1000.0, 1000.0)),
        settings=SETTINGS,
        clock=clock,
        metrics=Metrics(),
    )
    worker.start()
    try:
        # The service that is down takes all the senders it may...
        wait_for(lambda: services[down].hanging >= WORKERS - 1)
        # ...and every delivery of the one that is up still goes while those all hang.
        _queue(engine, clock, up)
        wait_for(lambda: _sent(engine, up) == MANY)
        assert services[down].answered == 0
        assert 0 < services[down].hanging < WORKERS  # the rest of its deliveries wait
        # A claim made at once is held to the same rule.
        now = clock.now()
        assert worker.reserve(kind=down, target="t", order_key="o:down", now=now) is None
        taken = worker.reserve(kind=up, target="t", order_key="o:up", now=now)
        assert taken is not None
        worker.release([("o:up", taken)])
        services[down].back.set()
        wait_for(lambda: _sent(engine, down) == MANY)
    finally:
        services[down].back.set()
        worker.stop()


def test_one_family_alone_uses_all_senders_when_it_is_the_only_one(engine: sa.Engine) -> None:
    # A worker sending one kind keeps nothing back: the rule costs it nothing.
    clock = ManualClock()
    _queue(engine, clock, SLACK_RESPONSE)
    service = _Service(hangs=True)
    worker = OutboxWorker(
        sessions=make_sessionmaker(engine),
        senders={SLACK_RESPONSE: service.send},
        pacer=Pacer(lambda lane: (1000.0, 1000.0)),
        settings=SETTINGS,
        clock=clock,
        metrics=Metrics(),
    )
    worker.start()
    try:
        wait_for(lambda: service.hanging == WORKERS)
    finally:
        service.back.set()
        worker.stop()


# -- against the emulators ------------------------------------------------------------


def _storm_config(**delivery: Any) -> Any:
    # Slack's pace is raised so that it, not its outage, is what the test waits on.
    fast = {"slack_burst": 2 * MANY, "slack_per_channel_per_s": 50.0}
    return parse_config(
        {**TEST_CONFIG, "delivery": {**TEST_CONFIG["delivery"], **fast, **delivery}}
    )


def _first(done: Callable[[], bool], other: Callable[[], bool]) -> None:
    """Wait until `done` or `other` holds, whichever comes first."""
    wait_for(lambda: done() or other(), timeout_s=60)


def test_slack_posts_all_land_while_pagerduty_hangs(
    make_service: Callable[..., LiveService],
    settings: Any,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    # PagerDuty takes each event, but only after the senders would all have been taken.
    service = make_service(settings, _storm_config(request_timeout_s=10.0, lease_s=20.0))
    pagerduty.faults.hang_next(MANY, seconds=4.0, calls=("/v2/enqueue",))
    for n in range(MANY):
        fire(service, sns_signer, f"prod-svc-{n}", "ALARM", 0)

    def posted() -> bool:
        return len(slack.channel_messages("C0PRODALERTS")) == MANY

    _first(posted, lambda: bool(pagerduty.events))
    assert posted()
    assert pagerduty.events == []  # every post landed before any hung page came back
    wait_for(lambda: len(pagerduty.incidents) == MANY, timeout_s=60)


def test_pages_all_go_while_slack_hangs(
    make_service: Callable[..., LiveService],
    settings: Any,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    # Slack takes each post, but only after the senders would all have been taken.
    service = make_service(settings, _storm_config(request_timeout_s=10.0, lease_s=20.0))
    slack.faults.hang_next(MANY, seconds=4.0, calls=("chat.postMessage",))
    for n in range(MANY):
        fire(service, sns_signer, f"prod-svc-{n}", "ALARM", 0)

    def paged() -> bool:
        return len(pagerduty.incidents) == MANY

    _first(paged, lambda: bool(slack.calls_to("chat.postMessage")))
    assert paged()
    assert slack.channel_messages("C0PRODALERTS") == []  # no hung post came back before
    wait_for(lambda: len(slack.channel_messages("C0PRODALERTS")) == MANY, timeout_s=60)


def test_pagerduty_5xx_is_one_request_and_comes_back_to_the_outbox(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    # As many refusals as there are pages: each is one attempt of the outbox's, retried
    # by its backoff, not a request resent by the client inside a sender.
    pagerduty.faults.fail_next(MANY, status=503, calls=("/v2/enqueue",))
    for n in range(MANY):
        fire(service, sns_signer, f"prod-svc-{n}", "ALARM", 0)
    wait_for(lambda: len(pagerduty.incidents) == MANY, timeout_s=60)
    wait_for(lambda: len(slack.channel_messages("C0PRODALERTS")) == MANY, timeout_s=60)
    with service.runtime.sessions() as db:
        attempts = db.scalars(
            sa.select(Delivery.attempts).where(Delivery.kind == PAGERDUTY_EVENT)
        ).all()
    assert sum(attempts) == MANY + MANY  # the refused ones and the accepted ones
    assert len(pagerduty.events) == MANY


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_the_events_client_hands_a_5xx_back_without_sending_it_again(
    pagerduty: PagerDutyEmulator, test_ca: TestCA, status: int
) -> None:
    client = events_client(
        PD_ROUTING_KEY, base_url=pagerduty.url, tls=test_ca.client_context(), timeout_s=2.0
    )
    pagerduty.faults.fail_next(1, status=status, calls=("/v2/enqueue",))
    with pytest.raises(pagerduty_client.HttpError) as raised:
        client.send_event(
            "trigger",
            dedup_key="opsbot-5xx",
            payload={"summary": "CPU high", "source": "opsbot", "severity": "critical"},
        )
    response = raised.value.response
    assert response is not None and response.status_code == status
    assert pagerduty.events_for("opsbot-5xx") == []  # a resend would have been taken

    # Through the sender: a retry for the outbox's backoff, not a dead page.
    pagerduty.faults.fail_next(1, status=status, calls=("/v2/enqueue",))
    job = Job(
        1,
        PAGERDUTY_EVENT,
        "pd:PD_KEY_PROD",
        {
            "routing_key_env": "PD_KEY_PROD",
            "action": "trigger",
            "dedup_key": "opsbot-5xx",
            "payload": {"summary": "CPU high", "source": "opsbot", "severity": "critical"},
        },
        1,
        None,
    )
    result = PagerDutySender(lambda _env: client).send(job)
    assert isinstance(result, Retry) and not result.ambiguous
    assert result.error == f"PagerDuty answered {status}"
    assert pagerduty.events_for("opsbot-5xx") == []
