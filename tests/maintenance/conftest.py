"""Maintenance windows on a test clock: the service runs its jobs only when a test says."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.maintenance.models import MaintenanceWindow
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import T0, ack_text, command, responses_to
from tests.support import LiveService, wait_for


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def start(
    settings: Settings,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    clock: ManualClock,
) -> Iterator[Callable[..., LiveService]]:
    """A service on the test clock; `start(config)` for another configuration."""
    stamped_by, sns_signer.clock = sns_signer.clock, clock
    yield lambda config=None: make_service(
        settings, config or parse_config(TEST_CONFIG), clock=clock, run_jobs=False
    )
    sns_signer.clock = stamped_by


def config_with(**extra: Any) -> Config:
    return parse_config({**TEST_CONFIG, **extra})


def windows_of(service: LiveService) -> list[MaintenanceWindow]:
    with service.runtime.sessions() as db:
        return list(db.scalars(sa.select(MaintenanceWindow).order_by(MaintenanceWindow.id)))


def audit_lines(service: LiveService, action: str) -> list[AuditRecord]:
    with service.runtime.sessions() as db:
        query = sa.select(AuditRecord).where(AuditRecord.action == action)
        return list(db.scalars(query.order_by(AuditRecord.id)))


def silence(
    service: LiveService, slack: SlackEmulator, text: str, *, user_id: str = "U0ALICE"
) -> tuple[str, str | None]:
    """`/incident <text>` through Bolt: its ack text and the one answer behind it (if any)."""
    url = slack.response_url()
    answer = command(service, "/incident", text, user_id=user_id, response_url=url)
    acked = ack_text(answer)
    if acked.startswith(("Making", "Ending")) or not acked:
        [reply] = wait_for(lambda: responses_to(slack, url))
        return acked, str(reply.get("text"))
    return acked, None
