"""The console in a real browser: one Chromium, one dev server per test module, a page each."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.sandbox.browser import TIMEOUT_MS, browser_page, chromium
from tests.sandbox.dev_server import DevServer, start_dev_server


@pytest.fixture(scope="module")
def executable() -> str:
    path, why = chromium()
    if path is None:
        pytest.skip(why)
    return path


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, executable: str) -> Iterator[DevServer]:
    server = start_dev_server(tmp_path_factory.mktemp("console"), rollout_s=3.0)
    yield server
    server.stop()


@pytest.fixture
def page(console: DevServer, executable: str) -> Iterator[Any]:
    """The console at its start page; the test fails if its JavaScript threw."""
    with browser_page(executable, viewport={"width": 1440, "height": 900}) as page:
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(console.url + "/")
        yield page
        assert errors == [], f"the console's JavaScript failed: {errors}"
