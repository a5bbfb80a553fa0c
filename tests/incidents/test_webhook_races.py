"""PagerDuty webhooks that race each other or arrive late, delivered by hand to a live service.

The emulator's webhook subscription is held back where a test needs to choose
the order of deliveries; the bodies are still the emulator's own, signed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from bot.config import parse_config
from bot.incidents import render
from bot.incidents.models import Incident
from bot.incidents.pagerduty_calls import PAGE_WAITS
from bot.outbox.models import PAGERDUTY_REST, Delivery
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import (
    T0,
    click,
    events_of,
    incident_row,
    outbox_idle,
    page,
    pd_calls,
    send_alarm,
)
from tests.support import LiveService, metric, wait_for

SECRET = "whsec-races"


@pytest.fixture
def webhook_service(
    settings: Settings,
    make_service: Callable[..., LiveService],
    pagerduty: PagerDutyEmulator,
) -> LiveService:
    """Webhooks on, PagerDuty's own incidents posted in C0ALERTS, and a reopen window
    long enough that an alarm firing again reopens (and pages again) its incident."""
    alarms = {**TEST_CONFIG["alarms"], "reopen_window_s": 600}
    config = parse_config(
        {**TEST_CONFIG, "alarms": alarms, "oncall": {"pagerduty_channel": "C0ALERTS"}}
    )
    return make_service(
        settings.model_copy(update={"pagerduty_webhook_secrets": [SecretStr(SECRET)]}), config
    )


def subscribe(service: LiveService, pagerduty: PagerDutyEmulator) -> None:
    pagerduty.subscribe_webhook(service.url + "/pagerduty/webhooks", SECRET)


@contextmanager
def webhooks_held(pagerduty: PagerDutyEmulator) -> Iterator[None]:
    """PagerDuty sends no webhook meanwhile: the test delivers the ones it wants, when it wants."""
    with pagerduty.lock:
        held = list(pagerduty.webhooks)
        pagerduty.webhooks.clear()
    try:
        yield
    finally:
        with pagerduty.lock:
            pagerduty.webhooks.extend(held)


def deliver(service: LiveService, body: dict[str, Any]) -> tuple[int, str]:
    raw = json.dumps(body).encode()
    answer = service.post(
        "/pagerduty/webhooks",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-PagerDuty-Signature": PagerDutyEmulator.sign(raw, SECRET),
            "X-Webhook-Id": "w-" + body["event"]["id"],
        },
    )
    return answer.status_code, str(answer.json()["message"])


# -- a late webhook from the PagerDuty incident a re-page left behind --------------------


def test_late_resolve_of_the_previous_page_does_not_close_the_new_page(
    webhook_service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = webhook_service
    subscribe(service, pagerduty)
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    [first] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == first["id"])
    dedup_key = incident_row(service, incident_id).dedup_key

    with webhooks_held(pagerduty):
        # Resolved from Slack: PagerDuty resolves its incident, whose webhook is slow.
        click(service, render.RESOLVE, str(incident_id), response_url=slack.response_url())
        wait_for(lambda: pd_calls(pagerduty, "PUT"))
        wait_for(lambda: incident_row(service, incident_id).status == "resolved")
        with pagerduty.lock:
            late_resolve = pagerduty.webhook_body(
                "incident.resolved",
                pagerduty.incidents[first["id"]],
                agent={"id": "PALICE", "type": "user_reference", "summary": "Alice Example"},
            )
        # The alarm fires again inside the reopen window: the incident reopens and pages
        # again, but PagerDuty takes no event for a while, so its new incident is not
        # open yet when the old incident's resolve arrives.
        pagerduty.faults.fail_for(600, status=503, calls=("/v2/enqueue",))
        send_alarm(service, sns_signer, "prod-api-5xx", "OK", T0 + timedelta(minutes=1))
        send_alarm(service, sns_signer, "prod-api-5xx", "ALARM", T0 + timedelta(minutes=2))
        wait_for(lambda: incident_row(service, incident_id).status == "open")
        assert incident_row(service, incident_id).pagerduty_incident_id is None  # re-paged

        with caplog.at_level("INFO", logger="bot.incidents.pagerduty_sync"):
            status, outcome = deliver(service, late_resolve)
        assert status == 200 and "recorded only" in outcome, outcome
        row = incident_row(service, incident_id)
        assert (row.status, row.resolved_at) == ("open", None)
        [ignored] = [r for r in caplog.records if "paged again" in r.getMessage()]
        assert ignored.levelname == "INFO" and first["id"] in ignored.getMessage()
        pagerduty.faults.clear()

    # The new page opens a new PagerDuty incident, and the incident follows that one.
    [second] = wait_for(
        lambda: [i for i in pagerduty.incidents_for(dedup_key) if i["id"] != first["id"]]
    )
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == second["id"])
    wait_for(lambda: outbox_idle(service))
    row = incident_row(service, incident_id)
    assert row.status == "open" and row.pagerduty_status == "triggered"
    assert [e.kind for e in events_of(service, incident_id)][-1] == "paged"


def page_waits(service: LiveService) -> int:
    """How often a PagerDuty REST call has waited for its page to leave the outbox."""
    with service.runtime.sessions() as db_session:
        payloads = db_session.scalars(
            sa.select(Delivery.payload).where(Delivery.kind == PAGERDUTY_REST)
        )
        return max((int(p.get(PAGE_WAITS) or 0) for p in payloads), default=0)


def test_a_click_before_pagerduty_has_the_new_page_waits_for_it(
    webhook_service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = webhook_service
    subscribe(service, pagerduty)
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    [first] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == first["id"])
    dedup_key = incident_row(service, incident_id).dedup_key
    click(service, render.RESOLVE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    wait_for(lambda: outbox_idle(service))
    # Paged again, while PagerDuty takes no event: the newest incident with our key is
    # still the resolved one, and an acknowledgement must not go to it.
    pagerduty.faults.fail_for(600, status=503, calls=("/v2/enqueue",))
    send_alarm(service, sns_signer, "prod-api-5xx", "OK", T0 + timedelta(minutes=1))
    send_alarm(service, sns_signer, "prod-api-5xx", "ALARM", T0 + timedelta(minutes=2))
    wait_for(lambda: incident_row(service, incident_id).status == "open")
    puts_before = len(pd_calls(pagerduty, "PUT"))
    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    # The page is still queued: the acknowledgement waits for it, asking PagerDuty nothing.
    # Waiting is not failing: counted apart, and no failed attempt in the log.
    with caplog.at_level("WARNING", logger="bot.outbox.worker"):
        wait_for(lambda: page_waits(service) >= 2)
    waited = metric(service, "opsbot_deliveries_total", target="pagerduty_rest", outcome="waiting")
    assert waited >= 2
    assert metric(service, "opsbot_deliveries_total", target="pagerduty_rest", outcome="retry") == 0
    assert not [r for r in caplog.records if "pagerduty.rest" in r.getMessage()]
    pagerduty.faults.clear()

    [second] = wait_for(
        lambda: [i for i in pagerduty.incidents_for(dedup_key) if i["id"] != first["id"]]
    )
    wait_for(lambda: incident_row(service, incident_id).acknowledged_at is not None, timeout_s=30)
    acks = pd_calls(pagerduty, "PUT")[puts_before:]
    assert [call["path"] for call in acks] == [f"/incidents/{second['id']}"]
    assert incident_row(service, incident_id).pagerduty_incident_id == second["id"]


# -- two deliveries at once, on two instances ---------------------------------------------


@contextmanager
def first_insert_held(engine: sa.Engine, table: str) -> Iterator[tuple[Any, Any]]:
    """The first INSERT into `table` waits, inside its transaction, until released.

    Yields (held, release): `held` is set once that transaction holds its new row,
    which a concurrent INSERT of the same unique key then has to wait for.
    """
    held, release = threading.Event(), threading.Event()
    prefix = f"INSERT INTO {table} "

    def hold(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith(prefix) and not held.is_set():
            held.set()
            release.wait(30)

    sa.event.listen(engine, "after_cursor_execute", hold)
    try:
        yield held, release
    finally:
        release.set()
        sa.event.remove(engine, "after_cursor_execute", hold)


def waiting_to_insert(engine: sa.Engine, table: str) -> int:
    """How many sessions wait on a lock to INSERT into `table` (PostgreSQL)."""
    with engine.connect() as connection:  # its own transaction: the view is a snapshot
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database() AND query LIKE :insert"
        )
        return int(connection.scalar(sa.text(query), {"insert": f"INSERT INTO {table} %"}) or 0)


def at_once(
    service: LiveService, first: dict[str, Any], second: dict[str, Any], *, table: str
) -> tuple[tuple[int, str], tuple[int, str]]:
    """`first` is applied up to its INSERT into `table`; `second` then runs into the same
    unique key and waits; `first` commits. Both answers, in that order."""
    engine = service.runtime.engine
    with first_insert_held(engine, table) as (held, release), ThreadPoolExecutor(2) as pool:
        answer_first = pool.submit(deliver, service, first)
        assert held.wait(15), "the first delivery never reached its INSERT"
        answer_second = pool.submit(deliver, service, second)
        wait_for(lambda: waiting_to_insert(engine, table))
        release.set()
        return answer_first.result(30), answer_second.result(30)


def opened_in_pagerduty(pagerduty: PagerDutyEmulator) -> tuple[dict[str, Any], dict[str, Any]]:
    """An incident someone opens in PagerDuty and Bob acknowledges a moment later: the two
    webhooks PagerDuty sends about it (no subscription yet, so none has gone out)."""
    bob = {"id": "PBOB", "type": "user_reference", "summary": "Bob Example"}
    incident = pagerduty.open_in_app("PSERVICE", title="Customers report 502s", user_id="PBOB")
    with pagerduty.lock:
        triggered = pagerduty.webhook_body("incident.triggered", dict(incident), agent=bob)
    pagerduty.act_in_app(incident["id"], status="acknowledged", user_id="PBOB")
    with pagerduty.lock:
        acknowledged = pagerduty.webhook_body("incident.acknowledged", dict(incident), agent=bob)
    return triggered, acknowledged


def only_incident(service: LiveService) -> Incident:
    with service.runtime.sessions() as db:
        [row] = db.scalars(sa.select(Incident)).all()
        return row


def needs_postgresql(engine: sa.Engine) -> None:
    if engine.dialect.name != "postgresql":
        # SQLite's BEGIN IMMEDIATE lets one writer in from its first statement: the
        # second delivery reads only after the first committed, so there is no race.
        pytest.skip("SQLite lets one writer at a time in: there is no race to lose")


def test_two_events_opening_one_pagerduty_incident_at_once_are_both_applied(
    webhook_service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    service = webhook_service
    needs_postgresql(service.runtime.engine)
    triggered, acknowledged = opened_in_pagerduty(pagerduty)

    # Both find no incident of ours; the acknowledgement creates it second and clashes
    # on its dedup key: it must be applied to the incident the trigger created.
    first, second = at_once(service, triggered, acknowledged, table="incidents")
    assert first[0] == 200 and "incident.triggered" in first[1], first
    assert second[0] == 200 and "incident.acknowledged" in second[1], second

    row = only_incident(service)
    assert row.acknowledged_at is not None and row.acknowledged_by == "<@U0BOB>"
    [message] = wait_for(lambda: slack.channel_messages("C0ALERTS"))
    wait_for(lambda: "acknowledged by <@U0BOB>" in str(message.blocks))
    kinds = [e.kind for e in events_of(service, row.id)]
    assert kinds == ["opened", "acknowledged"]
    assert metric(service, "opsbot_pagerduty_webhook_clashes_total") == 1
    assert metric(service, "opsbot_pagerduty_webhooks_total", outcome="applied") == 2


def test_one_event_delivered_twice_at_once_is_applied_once(
    webhook_service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    service = webhook_service
    needs_postgresql(service.runtime.engine)
    triggered, acknowledged = opened_in_pagerduty(pagerduty)
    assert deliver(service, triggered)[0] == 200
    [message] = wait_for(lambda: slack.channel_messages("C0ALERTS"))
    wait_for(lambda: outbox_idle(service))

    # Two deliveries of one event (a retry while the first still runs): the second
    # clashes on the event's own receipt, a true duplicate.
    retry = json.loads(json.dumps(acknowledged))
    first, second = at_once(service, acknowledged, retry, table="inbound_receipts")
    assert first[0] == 200 and "incident.acknowledged" in first[1], first
    assert second == (200, "duplicate")
    assert metric(service, "opsbot_pagerduty_webhook_clashes_total") == 0
    assert metric(service, "opsbot_pagerduty_webhooks_total", outcome="duplicate") == 1
    wait_for(lambda: outbox_idle(service))
    row = only_incident(service)
    kinds = [e.kind for e in events_of(service, row.id)]
    assert kinds == ["opened", "acknowledged"]
    assert "acknowledged by <@U0BOB>" in str(message.blocks)
