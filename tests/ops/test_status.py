"""/opsbot status and opsbot status: what opsbot knows of itself; Retry for admins only."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from bot.audit.models import AuditRecord
from bot.cli import main
from bot.config import parse_config
from bot.ops.render import RETRY_ACTION
from bot.outbox.models import Delivery
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import SLACK_TOKEN, TEST_CONFIG
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


def posts_to(slack: SlackEmulator, channel: str) -> list[object]:
    with slack.lock:
        return [
            c
            for c in slack.calls
            if c.method == "chat.postMessage" and c.args.get("channel") == channel
        ]


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

    # Sent again (and refused again: the channel still does not exist).
    wait_for(lambda: len(posts_to(slack, "C0MISSING")) == 2)
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


def status_audit(service: LiveService) -> list[AuditRecord]:
    with service.runtime.sessions() as db:
        query = sa.select(AuditRecord).where(AuditRecord.action == "ops.status")
        return list(db.scalars(query.order_by(AuditRecord.id)))


def test_a_guest_is_not_shown_the_status_told_the_right_and_audited(
    broken: tuple[LiveService, int], slack: SlackEmulator
) -> None:
    service, _ = broken
    slack.add_user("U0GUEST", "guest", guest=True)
    url = slack.response_url()
    command(service, "/opsbot", "status", user_id="U0GUEST", response_url=url)
    [answer] = wait_for(lambda: responses_to(slack, url))
    assert answer["text"] == (
        "Guests may not see opsbot's status: that needs full membership of the workspace."
    )
    assert "blocks" not in answer
    [record] = wait_for(lambda: status_audit(service))
    assert (record.actor, record.target, record.outcome) == ("U0GUEST", "opsbot:status", "refused")
    assert record.detail == {"reason": answer["text"], "right": "member"}


def test_a_slack_outage_while_checking_who_asks_for_the_status_is_audited_as_failed(
    broken: tuple[LiveService, int], slack: SlackEmulator
) -> None:
    service, _ = broken
    slack.add_user("U0DAVE", "dave")  # never looked up yet: nothing cached
    slack.faults.fail_next(1000, status=500, calls=("users.info",))
    url = slack.response_url()
    command(service, "/opsbot", "status", user_id="U0DAVE", response_url=url)
    [answer] = wait_for(lambda: responses_to(slack, url))
    assert answer["text"].startswith("opsbot cannot check who you are (")
    assert "blocks" not in answer
    [record] = wait_for(lambda: status_audit(service))
    assert (record.actor, record.outcome) == ("U0DAVE", "failed")
    assert record.detail["reason"] == answer["text"]
    assert record.detail["unverifiable"].startswith("Slack answered")


@pytest.fixture
def cli(
    broken: tuple[LiveService, int],
    settings: Settings,
    slack: SlackEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Callable[[str | None], str]]:
    """The CLI's environment beside `broken`'s service; the returned function writes the
    config file mapping the CLI's OS identity (None: mapping nobody), and gives the identity.

    The root logger's handlers are put back before `capsys` closes the stderr the CLI
    logged to, and before the service stops (logging as it does).
    """
    identity = Settings().os_identity
    path = tmp_path / "cli.yaml"
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("OPSBOT_CONFIG", str(path))
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", slack.api_url)

    def acting_as(user_id: str | None) -> str:
        data = json.loads(json.dumps(TEST_CONFIG))
        data["rights"] = {"admins": {"users": ["U0ALICE"]}}
        if user_id is not None:
            data["rights"]["cli"] = {identity: user_id}
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return identity

    root = logging.getLogger()
    handlers = list(root.handlers)
    yield acting_as
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)


def refusal(err: str) -> str:
    """The line the CLI says it with (log lines go to stderr too)."""
    [line] = [line for line in err.splitlines() if line.startswith("refused: ")]
    return line


def test_the_cli_retry_is_refused_to_a_non_admin_naming_the_right_and_changes_nothing(
    broken: tuple[LiveService, int],
    cli: Callable[[str | None], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    service, delivery_id = broken
    identity = cli("U0BOB")
    assert main(["outbox", "retry", "--id", str(delivery_id)]) == 3
    said = capsys.readouterr()
    assert refusal(said.err) == (
        f"refused: You may not retry delivery #{delivery_id}: that needs the admin right, "
        "held by <@U0ALICE> (rights.admins). Nothing was done."
    )
    assert said.out == ""
    assert main(["outbox", "retry"]) == 3  # every dead delivery: refused alike
    assert "You may not retry every abandoned delivery" in refusal(capsys.readouterr().err)

    cli(None)  # an identity rights.cli does not map acts as nobody
    assert main(["outbox", "retry", "--id", str(delivery_id)]) == 3
    assert f"{identity} is not a known CLI identity" in refusal(capsys.readouterr().err)

    records = audit(service)
    assert [(r.actor, r.target, r.outcome) for r in records] == [
        (f"cli:{identity}", f"delivery:{delivery_id}", "refused"),
        (f"cli:{identity}", "delivery:*", "refused"),
        (f"cli:{identity}", f"delivery:{delivery_id}", "refused"),
    ]
    assert records[0].detail["slack_user"] == "U0BOB"
    assert records[0].detail["right"] == "`admin`"
    assert records[2].detail["right"] == "`rights.cli` mapping"
    [still] = dead(service)
    assert still.id == delivery_id and still.attempts == 1


def test_the_cli_retry_by_an_admin_is_the_buttons_and_audited_as_the_cli(
    broken: tuple[LiveService, int],
    cli: Callable[[str | None], str],
    slack: SlackEmulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    service, delivery_id = broken
    identity = cli("U0ALICE")
    assert main(["outbox", "retry", "--id", str(delivery_id)]) == 0
    assert f"Delivery #{delivery_id} is pending again" in capsys.readouterr().out
    [record] = audit(service)
    assert (record.actor, record.target, record.outcome) == (
        f"cli:{identity}",
        f"delivery:{delivery_id}",
        "ok",
    )
    assert record.detail == {"slack_user": "U0ALICE"}
    # The running service sends it again (refused again: the channel still does not exist).
    wait_for(lambda: len(posts_to(slack, "C0MISSING")) == 2)
    wait_for(lambda: dead(service))
