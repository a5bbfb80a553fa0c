"""A route that gives each declared incident its own channel does so for the form too."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import Config, parse_config
from bot.incidents.models import Incident
from bot.modals import service
from tests.flags.conftest import FlagWorld
from tests.modals.conftest import Modals, modal_config
from tests.support import LiveService, wait_for


@pytest.fixture
def app_config(flag_world: FlagWorld) -> Config:
    config: dict[str, Any] = modal_config(flag_world)
    prod = config["alarm_routes"][0]
    config["alarm_routes"][0] = {**prod, "create_incident_channel": True}
    return parse_config(config)


def test_an_incident_declared_from_the_form_gets_its_own_channel(
    modals: Modals, live: LiveService
) -> None:
    opened = modals.command("/incident", "declare")
    assert opened.view is not None
    answer = modals.submit(
        opened.view,
        {service.SUMMARY: "Checkout is down", service.SEVERITY: "critical", service.ROUTE: "prod"},
    )
    assert not answer

    def channel() -> str | None:
        with live.runtime.sessions() as db:
            found = db.get(Incident, 1)
            return found.slack_channel_id if found is not None and found.has_channel else None

    created = wait_for(channel)
    assert "U0ALICE" in modals.slack.channels[created]["members"]
    path = "/" + opened.response_url.split("://", 1)[1].split("/", 1)[1]

    def said() -> str:
        return " ".join(str(r["text"]) for r in modals.slack.responses if r["url"] == path)

    wait_for(lambda: "Declared incident" in said() and f"Started <#{created}>" in said())
