"""docs/console.png: the sandbox console after a short demo (`make screenshot`).

Starts `opsbot dev`, fires a prod alarm (its message lists the seeded deploy and
flag flip before it, with their undo buttons), acknowledges it from its message,
asks /oncall, and photographs the console in Debian's Chromium.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.sandbox.browser import browser_page, chromium
from tests.sandbox.dev_server import start_dev_server


def main(target: str) -> int:
    executable, why = chromium()
    if executable is None:
        print(why, file=sys.stderr)
        return 1
    from playwright.sync_api import expect

    with tempfile.TemporaryDirectory() as directory:
        dev = start_dev_server(Path(directory))
        try:
            with browser_page(executable, viewport={"width": 1440, "height": 900}) as page:
                page.set_default_timeout(30_000)
                page.goto(dev.url + "/")
                page.get_by_role("button", name="Fire ALARM").click()
                message = page.locator("#messages > li.message", has_text="prod-checkout-5xx")
                expect(
                    message.get_by_role("button", name="Acknowledge", exact=True)
                ).to_be_visible()
                expect(message).to_contain_text("before this alarm")
                expect(message.get_by_role("button", name="Roll back to")).to_be_visible()
                message.get_by_role("button", name="Acknowledge", exact=True).click()
                expect(message).to_contain_text("acknowledged by")
                page.locator("#command").fill("/oncall")
                page.get_by_role("button", name="Run", exact=True).click()
                expect(page.locator("#messages li.ephemeral")).to_have_count(1)
                page.locator("#command").fill("/incident list")
                page.wait_for_timeout(1500)
                page.screenshot(path=target)
        finally:
            dev.stop()
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/console.png"))
