"""The Lambda adapter against the real role manager, through moto and the front door.

As in test_dbroles.py, moto holds the function and the front door answers its
invocations with the real role manager handler in-process (see conftest.py).
"""

from __future__ import annotations

import pytest

from bot.adapters import awslambda
from bot.adapters.aws import ATTEMPTS, client
from tests.dbroles.conftest import LambdaWorld


@pytest.fixture
def lambda_client(lambdas: LambdaWorld) -> object:
    return client("lambda", region="us-east-1", endpoint_url=lambdas.endpoint)


def test_a_synchronous_invocation_returns_the_role_managers_result(
    lambdas: LambdaWorld, lambda_client: object
) -> None:
    function = f"shop-staging-role-manager-{lambdas.database.dbname}"

    done = awslambda.invoke(lambda_client, function=function, event={"action": "check"})

    assert done.failure is None
    assert done.payload["action"] == "check" and done.payload["ok"] is False


def test_the_handler_raising_on_an_invalid_event_is_a_function_error(
    lambdas: LambdaWorld, lambda_client: object
) -> None:
    function = f"shop-staging-role-manager-{lambdas.database.dbname}"

    done = awslambda.invoke(lambda_client, function=function, event=["check"])

    assert done.failure is not None
    assert (done.failure.kind, done.failure.error_type) == ("Unhandled", "AttributeError")
    assert "has no attribute 'get'" in done.failure.text
    assert "stackTrace" not in done.failure.text


def test_a_missing_function_raises_with_aws_code(
    lambdas: LambdaWorld, lambda_client: object
) -> None:
    with pytest.raises(awslambda.InvokeFailed) as raised:
        awslambda.invoke(lambda_client, function="no-such-function", event={"action": "check"})

    assert raised.value.code == "ResourceNotFoundException"
    assert str(raised.value).startswith("ResourceNotFoundException")


def test_a_client_tries_a_call_three_times_and_once_without_retries(
    lambdas: LambdaWorld, lambda_client: object
) -> None:
    """ATTEMPTS is the whole number of tries, as `longest_call_s` counts them."""
    function = f"shop-staging-role-manager-{lambdas.database.dbname}"
    faults = lambdas.door.server.faults
    event = {"action": "check"}

    faults.fail_next(ATTEMPTS, status=500, calls=("lambda",), method="POST")
    with pytest.raises(awslambda.InvokeFailed):
        awslambda.invoke(lambda_client, function=function, event=event)
    faults.fail_next(ATTEMPTS - 1, status=500, calls=("lambda",), method="POST")
    assert awslambda.invoke(lambda_client, function=function, event=event).failure is None
    assert lambdas.staging.events == [event]

    once = client("lambda", region="us-east-1", endpoint_url=lambdas.endpoint, retry=False)
    faults.fail_next(1, status=500, calls=("lambda",), method="POST")
    with pytest.raises(awslambda.InvokeFailed):
        awslambda.invoke(once, function=function, event=event)
    assert lambdas.staging.events == [event]


def test_a_throttled_invocation_did_not_run_and_is_tried_again_after_a_pause(
    lambdas: LambdaWorld,
) -> None:
    """Reserved concurrency 1: another invocation holds the slot, Lambda answers 429."""
    function = f"shop-staging-role-manager-{lambdas.database.dbname}"
    once = client("lambda", region="us-east-1", endpoint_url=lambdas.endpoint, retry=False)
    faults = lambdas.door.server.faults
    event = {"action": "check"}
    slept: list[float] = []

    faults.fail_next(2, status=429, calls=("lambda",), method="POST")
    done = awslambda.invoke(
        once, function=function, event=event, throttle_waits_s=(0.25, 0.5), sleep=slept.append
    )

    assert done.failure is None and slept == [0.25, 0.5]
    assert lambdas.staging.events == [event]

    slept.clear()
    faults.fail_next(3, status=429, calls=("lambda",), method="POST")
    with pytest.raises(awslambda.InvokeFailed) as raised:
        awslambda.invoke(
            once, function=function, event=event, throttle_waits_s=(0.25, 0.5), sleep=slept.append
        )
    assert raised.value.throttled and slept == [0.25, 0.5]
    assert lambdas.staging.events == [event]  # three throttled tries ran nothing


def test_a_lost_answer_after_a_throttle_is_not_tried_again(lambdas: LambdaWorld) -> None:
    """A 5xx may hide a run: only the throttle before it is tried again."""
    function = f"shop-staging-role-manager-{lambdas.database.dbname}"
    once = client("lambda", region="us-east-1", endpoint_url=lambdas.endpoint, retry=False)
    faults = lambdas.door.server.faults
    slept: list[float] = []

    faults.fail_next(1, status=429, calls=("lambda",), method="POST")
    faults.fail_next(1, status=500, calls=("lambda",), method="POST")
    with pytest.raises(awslambda.InvokeFailed) as raised:
        awslambda.invoke(
            once,
            function=function,
            event={"action": "manage"},
            throttle_waits_s=(0.25, 0.5),
            sleep=slept.append,
        )

    assert not raised.value.throttled and slept == [0.25]
    assert lambdas.staging.events == []


def test_a_retrying_client_throttled_on_its_last_try_says_so(
    lambdas: LambdaWorld, lambda_client: object
) -> None:
    """botocore retries a 429 itself: an earlier try may have been one that ran (a 5xx),
    so the invocation is not `throttled` (tried again by `invoke`), but it was throttled
    last, which a check says."""
    function = f"shop-staging-role-manager-{lambdas.database.dbname}"
    faults = lambdas.door.server.faults
    slept: list[float] = []

    faults.fail_next(ATTEMPTS, status=429, calls=("lambda",), method="POST")
    with pytest.raises(awslambda.InvokeFailed) as raised:
        awslambda.invoke(
            lambda_client, function=function, event={"action": "check"}, sleep=slept.append
        )

    assert (raised.value.throttled, raised.value.throttled_last) == (False, True)
    assert slept == []  # botocore's tries were all: none more after them
    assert lambdas.staging.events == []
