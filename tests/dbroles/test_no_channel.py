"""A provision that needs a confirmation and has no channel to ask in is refused, audited.

A protected environment without a release channel asks in the channel the
command came from; a request that came from nowhere in particular (a modal
opened outside a channel) has none. It is refused, and like every other
refusal of /dbrole it is in the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bot.app import build_runtime
from bot.approvals.models import PendingAction
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.config import parse_config
from bot.dbroles import requests
from bot.dbroles.errors import DbRoleError
from bot.runtime import Runtime
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from tests.dbroles.conftest import dbrole_config
from tests.deploys.conftest import T0


@pytest.fixture
def runtime(settings: Settings, slack: SlackEmulator) -> Iterator[Runtime]:
    config = dbrole_config("nochannel")
    del config["apps"]["shop"]["environments"]["prod"]["release_channel"]
    runtime = build_runtime(settings, parse_config(config), clock=ManualClock(T0), run_jobs=False)
    runtime.start()
    yield runtime
    runtime.stop()


def test_a_protected_provision_with_no_channel_to_ask_in_is_refused_and_audited(
    runtime: Runtime,
) -> None:
    with pytest.raises(DbRoleError) as refused:
        requests.provision(runtime, app="shop", env="prod", actor="U0ALICE", channel=None)

    reason = "`shop/prod` needs a confirmation in Slack, but there is no channel to ask in."
    assert str(refused.value) == reason
    with runtime.sessions() as db:
        assert db.scalars(sa.select(PendingAction)).all() == []
        rows = db.scalars(sa.select(AuditRecord).order_by(AuditRecord.id)).all()
        assert [(r.actor, r.action, r.target, r.outcome, r.detail) for r in rows] == [
            ("U0ALICE", "dbrole.provision", "dbrole:shop/prod", "refused", {"reason": reason})
        ]
