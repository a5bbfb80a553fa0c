"""What `PagerDutyRest` tells its callers about a failed call: may it have landed?

The real `pagerduty` client against the PagerDuty emulator (or a port where
nothing listens). A note is the one call opsbot makes that is not safe to
repeat; its sender looks for it before posting again only when the failure
says it may have reached PagerDuty.
"""

from __future__ import annotations

import pytest

from bot.adapters.pagerduty import rest_client
from bot.pagerduty.errors import PagerDutyUnavailable
from bot.pagerduty.rest import UNSAID_WAIT_S, PagerDutyRest
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.server import free_port
from sandbox.tls import TestCA
from tests.conftest import PD_API_TOKEN


def _rest(url: str, test_ca: TestCA) -> PagerDutyRest:
    client = rest_client(
        PD_API_TOKEN,
        base_url=url,
        tls=test_ca.client_context(),
        timeout_s=0.5,
        default_from=None,
        network_retries=0,
    )
    return PagerDutyRest(client)


def _failure(rest: PagerDutyRest) -> PagerDutyUnavailable:
    with pytest.raises(PagerDutyUnavailable) as raised:
        rest.add_note("PINC1", from_email="alice@example.com", content="restarted the api pods")
    return raised.value


@pytest.mark.parametrize(("status", "landed"), [(503, False), (500, True), (502, True)])
def test_a_server_error_says_whether_the_call_may_have_landed(
    pagerduty: PagerDutyEmulator, test_ca: TestCA, status: int, landed: bool
) -> None:
    pagerduty.faults.fail_next(1, status=status)

    failure = _failure(_rest(pagerduty.url, test_ca))

    assert failure.may_have_landed is landed
    assert f"answered {status}" in str(failure)


def test_an_answer_that_never_came_may_have_landed(
    pagerduty: PagerDutyEmulator, test_ca: TestCA
) -> None:
    pagerduty.faults.hang_next(1, seconds=1.0)

    assert _failure(_rest(pagerduty.url, test_ca)).may_have_landed


def test_a_connection_never_made_did_nothing(test_ca: TestCA) -> None:
    failure = _failure(_rest(f"https://127.0.0.1:{free_port()}", test_ca))

    assert not failure.may_have_landed


def test_a_rate_limit_did_nothing(pagerduty: PagerDutyEmulator, test_ca: TestCA) -> None:
    pagerduty.faults.fail_next(1, status=429, retry_after_s=3)

    failure = _failure(_rest(pagerduty.url, test_ca))

    assert not failure.may_have_landed
    assert failure.retry_after_s == 3.0


def test_a_rate_limit_that_says_no_wait_still_pauses(
    pagerduty: PagerDutyEmulator, test_ca: TestCA
) -> None:
    pagerduty.faults.fail_next(1, status=429)

    failure = _failure(_rest(pagerduty.url, test_ca))

    assert failure.retry_after_s == UNSAID_WAIT_S
