"""`find_incident_by_key` with a service: another service's incident with the key is not it."""

from __future__ import annotations

from bot.adapters.pagerduty import rest_client
from bot.pagerduty.rest import PagerDutyRest
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.tls import TestCA
from tests.conftest import PD_API_TOKEN, PD_ROUTING_KEY


def test_the_newest_incident_with_the_key_is_looked_for_on_the_service_given(
    pagerduty: PagerDutyEmulator, test_ca: TestCA
) -> None:
    pagerduty.add_service("PSVCOTHER", "other team", routing_key=PD_ROUTING_KEY + "-other")
    ours = pagerduty.open_in_app("PSERVICE", title="api down", user_id="PALICE")
    theirs = pagerduty.open_in_app("PSVCOTHER", title="api down", user_id="PBOB")
    with pagerduty.lock:  # the other team's incident carries our dedup key, and is newer
        ours["incident_key"] = theirs["incident_key"] = "opsbot-incident-1"
    client = rest_client(
        PD_API_TOKEN,
        base_url=pagerduty.url,
        tls=test_ca.client_context(),
        timeout_s=2.0,
        default_from=None,
        network_retries=0,
    )
    rest = PagerDutyRest(client)

    found = rest.find_incident_by_key("opsbot-incident-1", service_id="PSERVICE")
    anywhere = rest.find_incident_by_key("opsbot-incident-1")

    assert found is not None and found["id"] == ours["id"]
    assert anywhere is not None and anywhere["id"] == theirs["id"]
    assert rest.find_incident_by_key("opsbot-incident-1", service_id="PNOSUCH") is None
