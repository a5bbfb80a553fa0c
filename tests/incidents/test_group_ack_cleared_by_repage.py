"""A grouped alarm paged again when a hold ends (a silence, a maintenance window) is
nobody's any more: its group's message stops saying who acknowledged it, as its own
message does."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from bot.clock import ManualClock
from bot.config import parse_config
from bot.incidents import render
from bot.maintenance import render as maintenance_render
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_alarm_after_a_hold import actions, silence_for_2_h, transition
from tests.alarms.test_late_and_flapping import NAME, WEBHOOK_SECRET
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import T0, click, incident_row, outbox_idle, page, send_alarm
from tests.incidents.test_silence_and_escalation import end_silence_by_hand
from tests.maintenance.conftest import silence
from tests.support import LiveService, wait_for


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def service(
    settings: Settings,
    make_service: Callable[..., LiveService],
    pagerduty: PagerDutyEmulator,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    clock: ManualClock,
) -> Iterator[LiveService]:
    """On the test clock, its jobs run by hand: alarms of a route grouped above one within
    10 min, a reopen window of 5 min; Alice may silence; PagerDuty's webhooks reach it."""
    pagerduty.add_user("POPSBOT", "opsbot", "opsbot@example.com")
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    stamped_by, sns_signer.clock = sns_signer.clock, clock
    data: dict[str, Any] = copy.deepcopy(TEST_CONFIG)
    data["alarms"].update(reopen_window_s=300, group_above=1, group_window_s=600)
    secrets = {"pagerduty_webhook_secrets": [SecretStr(WEBHOOK_SECRET)]}
    service = make_service(
        settings.model_copy(update=secrets), parse_config(data), clock=clock, run_jobs=False
    )
    pagerduty.subscribe_webhook(service.url + "/pagerduty/webhooks", WEBHOOK_SECRET)
    yield service
    sns_signer.clock = stamped_by  # the signer serves the whole session


def test_repage_at_the_end_of_a_silence_clears_the_group_lines_acknowledgement(
    service: LiveService,
    pagerduty: PagerDutyEmulator,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    clock: ManualClock,
) -> None:
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    send_alarm(service, sns_signer, "prod-api-other", "ALARM", clock.now())
    parent = wait_for(
        lambda: next(
            (m for m in slack.channel_messages("C0PRODALERTS") if "alarms on" in m.text), None
        )
    )
    wait_for(lambda: outbox_idle(service))
    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: "acknowledged by <@U0ALICE>" in str(parent.blocks))
    # Silenced, it resolves (and its page with it), then fires again unpaged: the
    # acknowledgement was of the episode that resolved.
    silence_for_2_h(service, slack, incident_id)
    clock.advance(minutes=10)
    send_alarm(service, sns_signer, NAME, "OK", clock.now())
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    clock.advance(minutes=5)
    service.runtime.outbox.wake()
    wait_for(lambda: actions(pagerduty)[-1] == "resolve")
    clock.advance(minutes=5)
    transition(service, sns_signer, clock, "INSUFFICIENT_DATA", old="OK")
    clock.advance(minutes=5)
    transition(service, sns_signer, clock, "ALARM", old="INSUFFICIENT_DATA")
    wait_for(lambda: outbox_idle(service))
    assert "acknowledged by <@U0ALICE>" in str(parent.blocks)

    clock.advance(minutes=5)
    end_silence_by_hand(service, slack, incident_id)
    wait_for(lambda: actions(pagerduty).count("trigger") == 3)
    wait_for(lambda: outbox_idle(service))

    assert incident_row(service, incident_id).acknowledged_by is None
    assert f"#{incident_id} " in str(parent.blocks)
    assert "acknowledged by" not in str(parent.blocks)


def test_repage_at_the_end_of_a_window_clears_the_group_lines_acknowledgement(
    service: LiveService,
    pagerduty: PagerDutyEmulator,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    clock: ManualClock,
) -> None:
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    send_alarm(service, sns_signer, "prod-api-other", "ALARM", clock.now())
    parent = wait_for(
        lambda: next(
            (m for m in slack.channel_messages("C0PRODALERTS") if "alarms on" in m.text), None
        )
    )
    wait_for(lambda: outbox_idle(service))
    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: "acknowledged by <@U0ALICE>" in str(parent.blocks))
    # Silenced, it resolves (and its page with it), then fires again unpaged; a window
    # begins over it, and holds its page when the silence ends.
    silence_for_2_h(service, slack, incident_id)
    clock.advance(minutes=10)
    send_alarm(service, sns_signer, NAME, "OK", clock.now())
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    clock.advance(minutes=5)
    service.runtime.outbox.wake()
    wait_for(lambda: actions(pagerduty)[-1] == "resolve")
    clock.advance(minutes=5)
    transition(service, sns_signer, clock, "INSUFFICIENT_DATA", old="OK")
    clock.advance(minutes=5)
    transition(service, sns_signer, clock, "ALARM", old="INSUFFICIENT_DATA")
    silence(service, slack, f"silence {NAME} for 2h reason database upgrade")
    clock.advance(minutes=5)
    end_silence_by_hand(service, slack, incident_id)
    wait_for(lambda: outbox_idle(service))
    assert actions(pagerduty).count("trigger") == 2
    assert "acknowledged by <@U0ALICE>" in str(parent.blocks)

    clock.advance(minutes=5)
    click(service, maintenance_render.END, "1", response_url=slack.response_url())
    wait_for(lambda: actions(pagerduty).count("trigger") == 3)
    wait_for(lambda: outbox_idle(service))

    assert incident_row(service, incident_id).acknowledged_by is None
    assert f"#{incident_id} " in str(parent.blocks)
    assert "acknowledged by" not in str(parent.blocks)
