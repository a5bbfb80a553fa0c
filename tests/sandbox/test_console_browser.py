"""The sandbox console in a real browser: headless Debian Chromium, driven by Playwright.

A person's path through the console: fire an alarm, see it posted, click
Acknowledge on the message, see it acknowledged in Slack and in PagerDuty;
and, while an alarm of the environment is open, deploy to it: continue past the
question, confirm (it is protected), watch the rollout finish.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.sandbox.browser import TIMEOUT_MS


def test_fire_an_alarm_then_acknowledge_it_from_its_message(page: Any) -> None:
    from playwright.sync_api import expect

    name = f"prod-checkout-5xx-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Alarm", exact=True).fill(name)
    page.keyboard.press("Escape")  # close the name suggestions, should they be open
    page.get_by_role("button", name="Fire ALARM").click()
    expect(page.locator("#activity")).to_contain_text(f"ALARM: {name}")

    page.locator("nav.channels button", has_text="prod-alerts").click()
    message = page.locator("#messages > li.message", has_text=name)
    expect(message).to_contain_text("ALARM", timeout=TIMEOUT_MS)
    expect(message.get_by_role("button", name="Acknowledge", exact=True)).to_be_visible()

    page.get_by_label("Acting as").select_option("U0ALICE")
    message.get_by_role("button", name="Acknowledge", exact=True).click()

    expect(message).to_contain_text("acknowledged by", timeout=TIMEOUT_MS)
    expect(message).to_contain_text("(edited)")
    # Slack dates show in the reader's own time, not as their UTC fallback text.
    expect(message.locator("time").first).to_be_visible()
    expect(message).not_to_contain_text("@20")
    expect(message).not_to_contain_text(" UTC")
    expect(message.get_by_role("button", name="Acknowledge", exact=True)).to_have_count(0)
    incident = page.locator("#incidents li", has_text=name)
    expect(incident).to_contain_text("acknowledged", timeout=TIMEOUT_MS)
    expect(incident).to_contain_text("acknowledged by Alice Example")


def test_deploy_to_a_protected_environment_confirm_and_watch_the_rollout(page: Any) -> None:
    from playwright.sync_api import expect

    # An alarm of checkout/prod is open: the deploy asks first (the reverse link).
    name = f"prod-checkout-5xx-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Alarm", exact=True).fill(name)
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Fire ALARM").click()
    page.locator("nav.channels button", has_text="prod-alerts").click()
    alarm = page.locator("#messages > li.message", has_text=name)
    expect(alarm).to_contain_text("ALARM", timeout=TIMEOUT_MS)

    page.get_by_label("Acting as").select_option("U0ALICE")
    page.locator("nav.channels button", has_text="releases").click()
    page.locator("#command").fill("/deploy checkout prod 1.5.0")
    page.get_by_role("button", name="Run", exact=True).click()
    asked = page.locator("#messages").get_by_role("button", name="Continue: deploy")
    expect(asked).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#messages")).to_contain_text("deploy anyway?")
    asked.click()

    # prod is protected: a confirmation with a Deploy (or Confirm) button comes first.
    confirm = page.locator("#messages").get_by_role(
        "button", name=re.compile(r"^(deploy|confirm)", re.IGNORECASE)
    )
    expect(confirm.first).to_be_visible(timeout=TIMEOUT_MS)
    prod = page.locator("#services li[data-environment=prod]")
    expect(prod).to_contain_text("1.4.0")
    confirm.first.click()

    # The service rolls out 1.5.0 (the sandbox's ECS finishes it) and the watcher says so.
    expect(prod).to_contain_text("1.5.0", timeout=TIMEOUT_MS)
    expect(prod).to_contain_text("COMPLETED", timeout=TIMEOUT_MS)
    expect(page.locator("#messages")).to_contain_text(
        re.compile(r"complete|succeeded|finished|rolled out", re.IGNORECASE), timeout=60_000
    )
