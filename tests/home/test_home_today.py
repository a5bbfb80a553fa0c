"""Home's "Today": each deploy and flag change only to who may read where it was announced.

A deploy is announced in its channel (or, without one, to its actor alone); an
AppConfig flag change in the channel its audit line keeps, an SSM one by the
restart it asked for. A guest sees none of them. Renamed commands (`/ops
deploy`) never push a block past Slack's limits, even in outside text full of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from bot.audit import service as audit
from bot.clock import ManualClock
from bot.config import parse_config
from bot.deploys.models import COMPLETED, DEPLOY, FLAG_ROLL, Deployment
from bot.home.service import FLAG_CHANGE
from bot.settings import Settings
from bot.slack_text import CONTEXT_MAX, HEADER_MAX, SECTION_MAX
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.home.test_home import HOME_CONFIG, headers_of, open_home
from tests.incidents.helpers import T0
from tests.support import LiveService


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def start(
    settings: Settings,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    clock: ManualClock,
    config: dict[str, Any],
) -> Iterator[LiveService]:
    stamped_by, sns_signer.clock = sns_signer.clock, clock
    yield make_service(settings, parse_config(config), clock=clock, run_jobs=False)
    sns_signer.clock = stamped_by


@pytest.fixture
def service(
    settings: Settings,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    clock: ManualClock,
) -> Iterator[LiveService]:
    yield from start(settings, make_service, sns_signer, clock, HOME_CONFIG)


@pytest.fixture
def named_service(
    settings: Settings,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    clock: ManualClock,
) -> Iterator[LiveService]:
    config = {**HOME_CONFIG, "commands": {"style": "single", "prefix": "ops"}}
    yield from start(settings, make_service, sns_signer, clock, config)


def deployment(
    app: str, *, actor: str, channel: str | None, tag: str, kind: str = DEPLOY
) -> Deployment:
    return Deployment(
        app=app,
        env="prod",
        kind=kind,
        status=COMPLETED,
        actor=actor,
        tag=tag,
        image=f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{app}@sha256:{'a' * 64}",
        digest=f"sha256:{'a' * 64}",
        channel=channel,
        created_at=T0,
    )


def flag_change(service: LiveService, label: str, *, actor: str, **detail: Any) -> None:
    with service.runtime.sessions() as db_session:
        audit.record(
            db_session,
            at=T0,
            actor=actor,
            action=FLAG_CHANGE,
            target=f"flag:{label}",
            outcome="ok",
            detail=detail,
        )
        db_session.commit()


def today_of(view: dict[str, Any]) -> str:
    return str([b for b in view["blocks"] if "Deploys and rollbacks" in str(b) or "Flag" in str(b)])


def test_today_shows_each_row_only_where_its_viewer_may_read_its_announcement(
    service: LiveService, slack: SlackEmulator
) -> None:
    slack.add_channel("C0RELEASES", "releases", private=True, members=["U0ALICE"])
    slack.add_user("U0GUEST", "guest", guest=True)
    slack.set_channel_members("C0ALERTS", ["U0ALICE", "U0BOB", "U0GUEST"])
    with service.runtime.sessions() as db_session:
        roll = deployment(
            "billing", actor="U0CAROL", channel="C0RELEASES", tag="v-roll", kind=FLAG_ROLL
        )
        db_session.add_all(
            [
                roll,
                deployment("api", actor="U0CAROL", channel="C0RELEASES", tag="v-private"),
                deployment("web", actor="cli:ci", channel="C0ALERTS", tag="v-public"),
                deployment("batch", actor="U0ALICE", channel=None, tag="v-alice-only"),
            ]
        )
        db_session.commit()
        roll_id = roll.id
    # AppConfig keeps the channel in its line; SSM is announced by its restart.
    flag_change(
        service,
        "pay/prod",
        actor="U0CAROL",
        flag="secret_pricing",
        asked="on for acme-corp",
        channel="C0RELEASES",
    )
    flag_change(
        service,
        "billing/prod",
        actor="U0CAROL",
        flag="ssm_flag",
        asked="off",
        parameter_version=3,
        deployment=roll_id,
    )
    flag_change(
        service, "web/prod", actor="U0CAROL", flag="public_flag", asked="on", channel="C0ALERTS"
    )
    flag_change(service, "batch/prod", actor="U0ALICE", flag="alice_flag", asked="on", channel=None)
    private = ("v-private", "v-roll", "secret_pricing", "acme-corp", "ssm_flag")
    alices = ("v-alice-only", "alice_flag")
    public = ("v-public", "public_flag")

    alice = today_of(open_home(service, slack, "U0ALICE"))
    assert all(word in alice for word in (*private, *alices, *public))

    bob = today_of(open_home(service, slack, "U0BOB"))
    assert all(word in bob for word in public)
    assert not [word for word in (*private, *alices) if word in bob]

    # A guest reads #alerts, yet is shown no deploy nor flag change at all.
    guest = open_home(service, slack, "U0GUEST")
    assert "Today" not in headers_of(guest)
    shown = str(guest["blocks"])
    assert not [word for word in (*private, *alices, *public) if word in shown]


def within_limits(view: dict[str, Any]) -> list[tuple[str, int]]:
    """The blocks of `view` whose text Slack would refuse as too long."""
    too_long = []
    for block in view["blocks"]:
        if block["type"] == "section" and len(block["text"]["text"]) > SECTION_MAX:
            too_long.append(("section", len(block["text"]["text"])))
        if block["type"] == "header" and len(block["text"]["text"]) > HEADER_MAX:
            too_long.append(("header", len(block["text"]["text"])))
        if block["type"] == "context":
            too_long += [
                ("context", len(e["text"]))
                for e in block["elements"]
                if len(e["text"]) > CONTEXT_MAX
            ]
    return too_long


def test_renamed_commands_never_push_a_home_block_past_slacks_limits(
    named_service: LiveService, slack: SlackEmulator
) -> None:
    # `asked` is outside text (kept with its backticks); each "`/deploy" grows when renamed.
    for number in range(20):
        flag_change(
            named_service,
            "web/prod",
            actor="U0CAROL",
            flag=f"f{number}",
            asked="`/deploy" * 25,
            channel="C0ALERTS",
        )
    view = open_home(named_service, slack, "U0ALICE")
    assert within_limits(view) == []
    shown = str(view["blocks"])
    assert "`/ops help`" in shown  # opsbot's own mention, as the workspace types it
    assert "`f19`" in shown and "`/ops deploy" in shown  # the newest first


def test_a_row_of_today_is_read_from_what_its_viewer_may_see_not_cut_before(
    service: LiveService, slack: SlackEmulator
) -> None:
    """Rows Bob may not see do not crowd out those he may."""
    slack.add_channel("C0RELEASES", "releases", private=True, members=["U0ALICE"])
    with service.runtime.sessions() as db_session:
        db_session.add(deployment("web", actor="cli:ci", channel="C0ALERTS", tag="v-public"))
        db_session.flush()
        for number in range(25):
            row = deployment("api", actor="U0CAROL", channel="C0RELEASES", tag=f"v-p{number}")
            row.created_at = datetime(2026, 11, 25, 10, 1, tzinfo=T0.tzinfo)
            db_session.add(row)
        db_session.commit()
    assert "v-public" in today_of(open_home(service, slack, "U0BOB"))
