"""A held fold reply stays bounded however many transitions fold into it.

An alarm flapping within one fold window (or while Slack is down and the reply is
held) with SNS-sized reasons must not grow the reply's row by each reason, rewritten
whole on every transition: that stalls the one intake writer every alarm goes through.
The reply still reads as before: the count, the last state, the last transitions.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from bot.alarms.service import Inbound, receive
from bot.config import parse_config
from bot.deploys import render as deploys_render
from bot.flags import render as flags_render
from bot.incidents.render import transitions_reply
from bot.outbox import service as outbox
from bot.outbox.models import PENDING, SLACK_REPLY, Delivery
from tests.conftest import TEST_CONFIG, TOPIC_ARN

ARN = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:"
T0 = datetime(2026, 12, 7, 23, 0, tzinfo=UTC)
NAME = "dev-flappy"  # the default route: no page, only the Slack message and its thread
REASON = "x" * 200_000  # SNS allows 256 KB a message
FLAPS = 60
STATES = ("ALARM", "INSUFFICIENT_DATA")


def inbound(n: int) -> Inbound:
    state, old = STATES[n % 2], STATES[(n + 1) % 2]
    body = {
        "AlarmName": NAME,
        "AlarmArn": ARN + NAME,
        "NewStateValue": state,
        "OldStateValue": old,
        "NewStateReason": f"{n}:{REASON}",
        "StateChangeTime": (T0 + timedelta(seconds=n)).isoformat(),
    }
    return Inbound(message_id=f"m{n}", via="https", body=json.dumps(body), topic_arn=TOPIC_ARN)


def held_replies(engine: sa.Engine) -> list[Delivery]:
    with Session(engine) as db_session:
        query = sa.select(Delivery).where(Delivery.kind == SLACK_REPLY, Delivery.status == PENDING)
        return list(db_session.scalars(query))


def test_sixty_transitions_with_huge_reasons_fold_into_a_bounded_reply(
    engine: sa.Engine,
) -> None:
    config = parse_config(
        {**TEST_CONFIG, "alarms": {**TEST_CONFIG["alarms"], "fold_window_s": 3600}}
    )
    for n in range(FLAPS):
        with Session(engine) as db_session:
            receive(db_session, inbound=inbound(n), config=config, now=T0 + timedelta(seconds=n))
            db_session.commit()

    [held] = held_replies(engine)
    assert len(json.dumps(held.payload)) < 100_000  # about 12 MB, unbounded
    # The first transition opened the incident; each after it is one folded item.
    folded = FLAPS - 1
    text = held.payload["text"]
    assert f"{folded} times in 58 s, last: *INSUFFICIENT DATA*" in text
    assert f"… {folded - 10} earlier transitions" in text
    # The last transition is kept, whatever was left out before it.
    last = held.payload["items"][-1]
    assert (last["to"], last["at"]) == (STATES[1], (T0 + timedelta(seconds=FLAPS - 1)).isoformat())
    assert held.payload["earlier"] + len(held.payload["items"]) == folded
    # It reads as the reply of every transition, kept whole, would.
    whole = [
        {
            "at": (T0 + timedelta(seconds=n)).isoformat(),
            "from": STATES[(n + 1) % 2],
            "to": STATES[n % 2],
            "reason": f"{n}:{REASON}",
            "note": None,
        }
        for n in range(1, FLAPS)
    ]
    assert text == transitions_reply(whole)["text"]


@pytest.mark.parametrize(
    "render",
    [transitions_reply, deploys_render.progress_reply, flags_render.progress_reply],
    ids=["transitions", "deploy progress", "flag progress"],
)
def test_every_fold_renderer_reads_the_bounded_reply_as_the_whole_run(
    engine: sa.Engine, render: outbox.RenderItems
) -> None:
    """What a folded reply keeps covers what each renderer of folds shows."""

    def item(n: int) -> dict[str, Any]:
        state = STATES[n % 2]
        at = (T0 + timedelta(seconds=n)).isoformat()
        return {"at": at, "from": STATES[(n + 1) % 2], "to": state, "state": state, "text": f"#{n}"}

    run = [item(n) for n in range(FLAPS)]
    with Session(engine) as db_session:
        for n, each in enumerate(run):
            outbox.reply_in_thread(
                db_session,
                key="incident:1",
                channel="C0ALERTS",
                fold_key="incident:1:transitions",
                item=each,
                render=render,
                now=T0 + timedelta(seconds=n),
            )
            held = held_replies_in(db_session)
            assert held.payload["text"] == render(run[: n + 1])["text"]
            assert held.payload["items"][-1] == each
        assert len(held.payload["items"]) < FLAPS


def held_replies_in(db_session: Session) -> Delivery:
    query = sa.select(Delivery).where(Delivery.kind == SLACK_REPLY, Delivery.status == PENDING)
    return db_session.scalars(query).one()
