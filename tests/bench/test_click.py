"""The click benchmark's parts: its rate-limited Slack, and what its table says it measured.

No time is asserted (the machine may be busy): the limits' refusals, and that every
click's effect lands for opsbot and is counted for the plain app.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bench.click import UPDATES_BURST, LimitedSlack
from bench.sandbox import BOT_TOKEN

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def slack() -> Iterator[LimitedSlack]:
    emulator = LimitedSlack()
    emulator.add_channel("C0CLICK", "click")
    emulator.start()
    yield emulator
    emulator.stop()


def test_chat_update_past_its_tier_is_refused_with_retry_after(slack: LimitedSlack) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=slack.api_url)
    message = slack.add_message(channel="C0CLICK", text="incident")
    for _ in range(int(UPDATES_BURST)):
        client.chat_update(channel="C0CLICK", ts=message.ts, text="Acknowledged")
    with pytest.raises(SlackApiError) as refused:
        client.chat_update(channel="C0CLICK", ts=message.ts, text="Acknowledged again")
    assert refused.value.response.status_code == 429
    assert int(refused.value.response.headers["Retry-After"]) >= 1
    assert slack.refused["chat.update"] == 1
    # The refused update changed nothing; the ones let through are recorded with their text.
    assert message.updates == UPDATES_BURST
    assert len(slack.updated[message.ts]) == UPDATES_BURST


def test_posts_past_a_burst_of_five_per_channel_are_refused(slack: LimitedSlack) -> None:
    slack.add_channel("C0OTHER", "other")
    client = WebClient(token=BOT_TOKEN, base_url=slack.api_url)
    for _ in range(5):
        client.chat_postMessage(channel="C0CLICK", text="alarm")
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C0CLICK", text="alarm")
    client.chat_postMessage(channel="C0OTHER", text="alarm")  # another channel's budget


@pytest.mark.timeout(400)
def test_quick_click_run_lands_every_opsbot_click_and_prints_the_ratios(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "click", "--quick", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "5. A click's effect" in result.stdout
    cases = json.loads((tmp_path / "click-quick.json").read_text())["click"]["cases"]
    for key in ("clicks", "flood", "many", "storm"):
        assert cases[key]["opsbot"]["lost"] == 0, key
        assert cases[key]["opsbot"]["landed"] == cases[key]["opsbot"]["clicks"], key
        plain = cases[key]["plain"]
        assert plain["landed"] + plain["lost"] == plain["clicks"], key
    targets = [line for line in result.stdout.splitlines() if "click to effect p99" in line]
    assert len(targets) == 2 and all(line.split()[0] in ("MET", "MISSED") for line in targets)
