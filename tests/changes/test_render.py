"""The changes section as data: text from outside is escaped, button labels fit Slack."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from bot.changes.outside import LOOKED, OutsideView, Seen
from bot.changes.render import changes_blocks, slack_date, undo_label
from bot.changes.service import ChangeItem, ChangesView, Undo

AT = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


def test_outside_text_is_escaped_and_the_date_is_a_slack_date() -> None:
    item = ChangeItem(
        key="flag:7",
        kind="flag",
        at=AT,
        actor="U0ALICE",
        subject="<!channel>&co",
        before="off",
        after="on · message=<b>",
        status="complete",
        undo=Undo(kind="flag", flag="<!channel>&co", verb="off"),
    )
    view = ChangesView(app="api", env="prod", window_min=120, items=[item])
    section, actions = changes_blocks(view, incident_id=42)
    text = section["text"]["text"]
    assert "Flag `&lt;!channel&gt;&amp;co` `off` → `on · message=&lt;b&gt;`" in text
    assert "<!channel>" not in text
    assert slack_date(AT) == "<!date^1795599000^{date_short_pretty} {time}|2026-11-25 09:30 UTC>"
    assert slack_date(AT) in text
    [button] = actions["elements"]
    assert button["action_id"] == "incident_undo:flag:7" and button["value"] == "42:flag:7"
    assert button["text"] == {"type": "plain_text", "text": "Turn <!channel>&co off again"}


def test_a_long_version_is_cut_to_fit_a_button() -> None:
    label = undo_label(Undo(kind="rollback", target_version="v" * 200, rollback_of=3))
    assert len(label) == 75 and label.startswith("Roll back to vvv")


def test_a_look_made_before_the_alarm_says_when_in_the_section() -> None:
    looked_at = datetime(2026, 11, 25, 9, 29, 47, 400000, tzinfo=UTC)
    seen = Seen(task_definition="api-prod:7", image="1.0.3", at=AT.replace(minute=10))
    view = ChangesView(app="api", env="prod", window_min=120)
    as_of = "as of <!date^1795598987^{time_secs}|09:29:47 UTC>, 13 s before this alarm"

    before = OutsideView(state=LOOKED, seen=(seen,), looked_at=looked_at, before_alarm_s=12.6)
    section, context = changes_blocks(view, incident_id=42, outside=before)
    assert ":eyes: Task definition `api-prod:7`" in section["text"]["text"]
    assert context["elements"] == [
        {"type": "mrkdwn", "text": f":mag: Deploys made outside opsbot: as seen on ECS {as_of}."}
    ]
    [quiet] = changes_blocks(view, incident_id=42, outside=replace(before, seen=()))
    assert f"(by opsbot, or seen on ECS {as_of})." in quiet["elements"][0]["text"]

    after = replace(before, before_alarm_s=0.0)
    assert len(changes_blocks(view, incident_id=42, outside=after)) == 1  # no "as of" line
    [quiet] = changes_blocks(view, incident_id=42, outside=replace(after, seen=()))
    assert quiet["elements"][0]["text"].endswith("(by opsbot, or seen on ECS).")
