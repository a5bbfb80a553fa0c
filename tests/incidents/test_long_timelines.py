"""A long incident's timeline in one Slack message keeps its newest events, and says how
many earlier ones it leaves out: the state it is in now is what on-call reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.incidents import render
from bot.incidents import service as incidents
from bot.incidents.models import Incident, IncidentEvent
from bot.slack_text import BLOCKS_MAX, MESSAGE_MAX
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import click, incident_row, outbox_idle, page
from tests.support import LiveService, wait_for

T0 = datetime(2026, 12, 7, tzinfo=UTC)
WORDS = (
    "Threshold Crossed: 1 out of the last 1 datapoints [52.0 (07/12/26 10:00:00)] was greater "
    "than the threshold (50.0) (minimum 1 datapoint for OK -> ALARM transition)."
)


def events(count: int) -> list[IncidentEvent]:
    return [
        IncidentEvent(
            id=i + 1,
            incident_id=7,
            kind="alarm_state",
            at=T0 + timedelta(minutes=i),
            recorded_at=T0,
            actor=None,
            from_state="OK" if i % 2 else "ALARM",
            to_state="ALARM" if i % 2 else "OK",
            text=WORDS,
            data={},
        )
        for i in range(count)
    ]


def incident() -> Incident:
    return Incident(
        id=7,
        dedup_key="alarm:7",
        source="alarm",
        status="open",
        title="prod-api-5xx",
        alarm_state="ALARM",
        route_name="prod",
        channel="C0PRODALERTS",
        severity="critical",
        opened_at=T0,
    )


def shown(text: str, timeline: list[IncidentEvent]) -> list[int]:
    return [e.id for e in timeline if f"<!date^{int(e.at.timestamp())}^" in text]


def fits_slack(message: dict[str, object]) -> None:
    blocks = message["blocks"]
    assert isinstance(blocks, list) and len(blocks) <= BLOCKS_MAX
    assert len(json.dumps(message)) < MESSAGE_MAX


def test_the_channel_shows_the_newest_events_and_counts_the_earlier_ones() -> None:
    timeline = events(400)
    message = render.channel_events(timeline, incident_id=7)
    fits_slack(message)
    text = json.dumps(message["blocks"])
    ids = shown(text, timeline)
    assert ids == list(range(ids[0], 401))  # the newest, without a gap
    left_out = ids[0] - 1
    assert left_out > 0
    assert f"{left_out} earlier events are not shown here" in text
    assert "`/incident timeline 7`" in text
    assert message["text"].startswith(f"{left_out} earlier events not shown; ")


def test_a_timeline_that_fits_is_shown_whole_without_a_note() -> None:
    timeline = events(5)
    message = render.channel_events(timeline, incident_id=7)
    text = json.dumps(message["blocks"])
    assert shown(text, timeline) == [1, 2, 3, 4, 5]
    assert "not shown" not in text and "not shown" not in message["text"]


def test_incident_timeline_keeps_the_newest_events() -> None:
    timeline = events(400)
    message = render.timeline_message(incident(), timeline)
    fits_slack(message)
    text = json.dumps(message["blocks"][1:])  # after the head, which says when it opened
    ids = shown(text, timeline)
    assert ids == list(range(ids[0], 401))
    assert f"{ids[0] - 1} earlier events are not shown here" in text
    assert "`/incident timeline 7 markdown`" in text


def test_the_markdown_timeline_keeps_the_newest_rows_within_its_length() -> None:
    timeline = events(400)
    document = render.timeline_markdown(incident(), timeline, names={}, max_chars=39_000)
    assert len(document) <= 39_000
    rows = [line for line in document.splitlines() if line.startswith("| 2026-")]
    assert rows[-1].startswith("| 2026-12-07 06:39:00 ")  # the 400th event, at T0 + 399 min
    assert f"- Timeline: the newest {len(rows)} rows; {400 - len(rows)} earlier left out" in (
        document
    )


def test_a_channel_started_on_a_long_incident_shows_its_latest_acknowledgement(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    with service.runtime.sessions() as db_session:
        found = db_session.get(Incident, incident_id)
        assert found is not None
        now = service.runtime.clock.now()
        for i in range(400):  # before the acknowledgement below
            at = now - timedelta(seconds=400 - i)
            states = ("ALARM", "OK") if i % 2 else ("OK", "ALARM")
            incidents.add_event(
                db_session, incident=found, kind="alarm_state", at=at, now=at, text=WORDS,
                from_state=states[0], to_state=states[1],
            )  # fmt: skip
        db_session.commit()
    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: incident_row(service, incident_id).acknowledged_by is not None)
    wait_for(lambda: outbox_idle(service))
    click(service, render.START_CHANNEL, str(incident_id), response_url=slack.response_url())
    channel = wait_for(lambda: incident_row(service, incident_id).slack_channel_id)
    wait_for(lambda: outbox_idle(service))

    mirrored = wait_for(
        lambda: next(
            (m for m in slack.channel_messages(channel) if "earlier events" in str(m.blocks)),
            None,
        )
    )
    text = str(mirrored.blocks)
    assert "acknowledged by <@U0ALICE>" in text  # the newest event
    assert f"`/incident timeline {incident_id}`" in text
    assert len(mirrored.blocks) <= BLOCKS_MAX


def test_a_long_incidents_postmortem_draft_keeps_its_sections_to_fill() -> None:
    # Cut from the end, the draft lost "Who acted" and the headings people fill in.
    budget = 39_000
    draft = render.postmortem_markdown(
        incident(), events(2000), names={}, changes=[], max_chars=budget
    )
    assert len(draft) <= budget
    assert draft.rstrip().endswith("## What we change")
    assert "## Who acted" in draft
    kept = draft.count("\n| 2026-")
    assert 0 < kept < 2000
    assert f"- Timeline: the newest {kept} rows; {2000 - kept} earlier left out" in draft
