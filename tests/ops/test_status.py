"""/opsbot status and opsbot status: what opsbot knows of itself; Retry for admins only."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.cli import main
from bot.config import parse_config
from bot.ops.render import RETRY_ACTION
from bot.outbox.models import Delivery
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import click, command, outbox_idle, responses_to, send_alarm
from tests.support import LiveService, wait_for


@pytest.fixture
def broken(
    settings: Settings,
    slack: SlackEmulator,
    sns_signer: SnsSigner,
    make_service: Callable[..., LiveService],
) -> tuple[LiveService, int]:
    """A service with one dead delivery (its route's channel does not exist); Alice is admin."""
    data = json.loads(json.dumps(TEST_CONFIG))
    data["alarm_routes"][-1]["channel"] = "C0MISSING"
    data["rights"] = {"admins": {"users": ["U0ALICE"]}}
    service = make_service(settings, parse_config(data))
    send_alarm(service, sns_signer, "other-disk-full", "ALARM")
    wait_for(lambda: dead(service))
    wait_for(lambda: outbox_idle(service))
    [row] = dead(service)
    return service, row.id


def dead(service: LiveService) -> list[Delivery]:
    with service.runtime.sessions() as db:
        return list(db.scalars(sa.select(Delivery).where(Delivery.status == "dead")))


def audit(service: LiveService) -> list[AuditRecord]:
    with service.runtime.sessions() as db:
        query = sa.select(AuditRecord).where(AuditRecord.action == "outbox.retry")
        return list(db.scalars(query.order_by(AuditRecord.id)))


def test_status_shows_the_outbox_dead_deliveries_and_instances(
    broken: tuple[LiveService, int], slack: SlackEmulator
) -> None:
    service, delivery_id = broken
    url = slack.response_url()
    command(service, "/opsbot", "status", user_id="U0BOB", response_url=url)
    [answer] = wait_for(lambda: responses_to(slack, url))
    assert answer["response_type"] == "ephemeral"
    shown = json.dumps(answer["blocks"])
    assert "*Outbox*" in shown and "PagerDuty events: 0 waiting" in shown
    assert f"#{delivery_id} slack.message to `slack:C0MISSING`" in shown
    assert "channel_not_found" in shown
    assert "Slack token: OK" in shown
    monitor = service.runtime.ops_monitor
    assert monitor is not None and monitor.instance_id in shown
    [button] = [
        b["accessory"] for b in answer["blocks"] if b.get("accessory", {}).get("type") == "button"
    ]
    assert (button["action_id"], button["value"]) == (RETRY_ACTION, str(delivery_id))


def test_retry_is_refused_to_a_non_admin_audited_and_changes_nothing(
    broken: tuple[LiveService, int], slack: SlackEmulator
) -> None:
    service, delivery_id = broken
    url = slack.response_url()
    click(service, RETRY_ACTION, str(delivery_id), user_id="U0BOB", response_url=url)
    [answer] = wait_for(lambda: responses_to(slack, url))
    assert answer["response_type"] == "ephemeral"
    assert "needs the `admin` right" in answer["text"] and "Nothing was done" in answer["text"]
    [record] = audit(service)
    assert (record.actor, record.target, record.outcome) == (
        "U0BOB",
        f"delivery:{delivery_id}",
        "refused",
    )
    [still] = dead(service)
    assert still.id == delivery_id and still.attempts == 1


def test_retry_by_an_admin_puts_the_delivery_back_in_line(
    broken: tuple[LiveService, int], slack: SlackEmulator
) -> None:
    service, delivery_id = broken
    url = slack.response_url()
    click(service, RETRY_ACTION, str(delivery_id), user_id="U0ALICE", response_url=url)
    [answer] = wait_for(lambda: responses_to(slack, url))
    assert f"Delivery #{delivery_id} is pending again" in answer["text"]
    [record] = audit(service)
    assert (record.actor, record.outcome) == ("U0ALICE", "ok")

    def posts_to_the_missing_channel() -> int:
        with slack.lock:
            return len(
                [
                    c
                    for c in slack.calls
                    if c.method == "chat.postMessage" and c.args.get("channel") == "C0MISSING"
                ]
            )

    # Sent again (and refused again: the channel still does not exist).
    wait_for(lambda: posts_to_the_missing_channel() == 2)
    wait_for(lambda: dead(service))


def test_the_cli_status_reads_the_same(
    broken: tuple[LiveService, int],
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service, delivery_id = broken
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"#{delivery_id} slack.message to slack:C0MISSING: channel_not_found" in out
    assert "Slack token: OK" in out
    monitor = service.runtime.ops_monitor
    assert monitor is not None and f"{monitor.instance_id} (" in out and ": live" in out


def test_a_guest_is_not_shown_the_status(
    broken: tuple[LiveService, int], slack: SlackEmulator
) -> None:
    service, _ = broken
    slack.add_user("U0GUEST", "guest", guest=True)
    url = slack.response_url()
    command(service, "/opsbot", "status", user_id="U0GUEST", response_url=url)
    [answer] = wait_for(lambda: responses_to(slack, url))
    assert answer["text"] == "Guests may not see opsbot's status."
    assert "blocks" not in answer
