"""The changes section as data: text from outside is escaped, button labels fit Slack."""

from __future__ import annotations

from datetime import UTC, datetime

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
