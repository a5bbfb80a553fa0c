"""Debian's Chromium driven by Playwright, for the console's browser test and screenshot.

Playwright's own browser downloads are never used (`playwright install` fetches
builds from the network): the browser is Debian's `chromium`, installed by
.ci/install-chromium when missing.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> tuple[str | None, str]:
    """The path of Debian's chromium, installing it if needed; or None and why not."""
    found = shutil.which("chromium")
    if found:
        return found, ""
    script = ROOT / ".ci" / "install-chromium"
    result = subprocess.run(  # our own script
        [str(script)], capture_output=True, text=True, timeout=900, check=False
    )
    found = shutil.which("chromium")
    if found:
        return found, ""
    why = (result.stderr or result.stdout).strip() or "unknown reason"
    return None, f"Debian's chromium is not installed and could not be installed: {why}"


TIMEOUT_MS = 30_000


@contextmanager
def browser_page(executable: str, **context: Any) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    # A loaded CI machine answers slower than Playwright's five-second default for expect.
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(**context)
            yield page
        finally:
            browser.close()
