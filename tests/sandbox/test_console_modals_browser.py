"""The console's modals in a real browser (headless Debian Chromium, Playwright).

A person types `/deploy` bare, sees the form the bot opened in the emulated
Slack, picks checkout/staging, searches ECR for a tag, submits, and sees the
service roll out; a tag that is not there is shown under its field first.
"""

from __future__ import annotations

from typing import Any

from tests.sandbox.browser import TIMEOUT_MS


def test_deploy_from_the_modal_the_bare_command_opens(page: Any) -> None:
    from playwright.sync_api import expect

    page.get_by_label("Acting as").select_option("U0ALICE")
    page.locator("nav.channels button", has_text="releases").click()
    page.locator("#command").fill("/deploy")
    page.get_by_role("button", name="Run", exact=True).click()

    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Deploy", timeout=TIMEOUT_MS)
    dialog.get_by_label("App environment").select_option("checkout/staging")

    # A tag that is not in ECR: the bot's refusal shows under the tag field.
    tag = dialog.get_by_label("Image tag")
    tag.fill("9.9.9")
    dialog.get_by_role("button", name="Deploy", exact=True).click()
    expect(dialog.locator(".modal-error")).to_contain_text("There is no image 9.9.9")

    # The search offers ECR's tags as typed; the form goes through with a real one.
    tag = dialog.get_by_label("Image tag")
    tag.fill("1.5")
    expect(page.locator("#modal-modal_tag-options option[value='1.5.0']")).to_have_count(1)
    tag.fill("1.5.0")
    dialog.get_by_role("button", name="Deploy", exact=True).click()
    expect(page.get_by_role("dialog")).to_have_count(0)

    staging = page.locator("#services li[data-environment=staging]")
    expect(staging).to_contain_text("1.5.0", timeout=TIMEOUT_MS)
    expect(page.locator("#messages")).to_contain_text("Deploy #", timeout=TIMEOUT_MS)
