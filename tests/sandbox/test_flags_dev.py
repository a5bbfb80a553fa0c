"""/flag in `opsbot dev`: the console's quick commands work on the demo world's flags.

checkout/prod keeps its flags in AppConfig (moto + the sandbox's AppConfigGaps,
one sandbox second per AppConfig minute) and is protected; checkout/staging
keeps them as SSM parameters, restarted by the sandbox's ECS rollout driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.sandbox.dev_server import DevServer, start_dev_server
from tests.support import wait_for


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    server = start_dev_server(tmp_path_factory.mktemp("dev-flags"), rollout_s=2.0)
    yield server
    server.stop()


def run(dev: DevServer, text: str, *, user: str = "U0ALICE") -> dict[str, Any]:
    answer = dev.post("/console/api/command", {"user": user, "channel": "C0ALERTS", "text": text})
    assert answer.json()["status"] == 200
    return dict(answer.json())


def later_answer(dev: DevServer, containing: str) -> str:
    found = wait_for(
        lambda: [
            e["text"]
            for e in dev.state()["ephemerals"]
            if e["source"] == "response_url" and containing in e["text"]
        ],
        timeout_s=60,
    )
    return str(found[-1])


def releases(dev: DevServer) -> list[dict[str, Any]]:
    channel = next(c for c in dev.state()["channels"] if c["name"] == "releases")
    return list(channel["messages"])


def test_flag_list_of_both_backends(dev: DevServer) -> None:
    run(dev, "/flag list checkout prod")
    text = later_answer(dev, "Feature flags of checkout/prod")
    assert "`new_checkout_flow` (New checkout flow) *on*" in text
    run(dev, "/flag list checkout staging")
    text = later_answer(dev, "Feature flags of checkout/staging")
    assert "`NEW_CHECKOUT_FLOW` *true*" in text


def test_an_ssm_flag_is_rolled_out_to_the_end(dev: DevServer) -> None:
    run(dev, "/flag off checkout staging NEW_CHECKOUT_FLOW")
    later_answer(dev, "`NEW_CHECKOUT_FLOW` of `checkout/staging` is now *false*")
    wait_for(
        lambda: [m for m in releases(dev) if "Restarted checkout/staging" in m["text"]],
        timeout_s=60,
    )


def test_a_protected_appconfig_flag_asks_for_confirmation(dev: DevServer) -> None:
    run(dev, "/flag on checkout prod apple_pay")
    later_answer(dev, "is protected: request #")
    wait_for(lambda: [m for m in releases(dev) if "apple_pay" in m["text"]], timeout_s=30)
