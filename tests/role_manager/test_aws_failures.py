"""A role manager that fails before its database: AWS's words stay in the function's log.

The bot shows a run's errors to anyone who runs `/dbrole check` (no right needed), keeps
them in the audit trail and logs them. AWS's messages name the account, the function's
assumed role and the master secret, so a failure is said as its error code and what the
function was doing, or as its type; the message goes to the function's own log line.
Secrets Manager is a loopback server answering as AWS does when the function's role
may not read the secret, or moto holding a secret that is not what the function needs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import role_manager  # from infra/lambda/role_manager, put on sys.path by conftest.py

from bot.dbroles.models import ManagerResult, Outcome
from bot.dbroles.render import outcome_text
from sandbox.server import HttpRequest, HttpResponse, LoopbackServer

ACCOUNT = "123456789012"
SECRET_ARN = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:rds!cluster-0a1b2c"
DENIED = (
    f"User: arn:aws:sts::{ACCOUNT}:assumed-role/checkout-prod-role-manager/fn is not "
    f"authorized to perform: secretsmanager:GetSecretValue on resource: {SECRET_ARN} "
    "because no identity-based policy allows the secretsmanager:GetSecretValue action"
)
LOGGED_ONLY = ": its message is in the function's log"


@pytest.fixture
def denying_secrets(rm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Secrets Manager refusing the function's role, as AWS does; yields the calls' targets."""
    calls: list[str] = []

    def handle(request: HttpRequest) -> HttpResponse:
        calls.append(request.headers.get("x-amz-target", ""))
        return HttpResponse.json({"__type": "AccessDeniedException", "Message": DENIED}, 400)

    server = LoopbackServer(handle).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    monkeypatch.setenv("MASTER_SECRET_ARN", SECRET_ARN)
    try:
        yield calls
    finally:
        server.stop()


def failure_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == "role_manager.failed"]


def check_text(result: dict[str, Any]) -> str:
    """What /dbrole check shows for this result (the bot's own parsing and rendering)."""
    parsed = ManagerResult.from_payload(json.loads(json.dumps(result)))
    assert parsed is not None
    return outcome_text(Outcome(action="check", label="shop/prod", function="rm", result=parsed))


@pytest.mark.parametrize("action", ["check", "manage"])
def test_a_secret_the_function_may_not_read_is_said_without_aws_words(
    denying_secrets: list[str], caplog: pytest.LogCaptureFixture, action: str
) -> None:
    result = role_manager.handler({"action": action}, None)

    assert denying_secrets == ["secretsmanager.GetSecretValue"]
    assert result["errors"] == [f"AWS error (AccessDeniedException) reading a secret{LOGGED_ONLY}"]
    assert (result["ok"], result["ran"], result["changed"]) == (False, False, [])
    said = json.dumps(result) + check_text(result)
    for word in (ACCOUNT, "assumed-role", "rds!cluster", "not authorized"):
        assert word not in said
    # The operator still finds AWS's words, in the function's own log line.
    [record] = failure_records(caplog)
    assert record.__dict__["aws_error_code"] == "AccessDeniedException"
    assert record.exc_info is not None
    assert DENIED in str(record.exc_info[1])
    [logged_result] = [
        r for r in caplog.records if r.getMessage().startswith("role manager result")
    ]
    assert ACCOUNT not in logged_result.getMessage()


def test_a_secret_that_is_no_json_object_is_said_as_its_type(
    rm_env: dict[str, str],
    rm_aws: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = rm_aws.create_secret(Name="rm-not-an-object", SecretString=json.dumps("hunter2"))
    monkeypatch.setenv("MASTER_SECRET_ARN", secret["ARN"])

    result = role_manager.handler({"action": "check"}, None)

    assert result["errors"] == [f"error (ValueError){LOGGED_ONLY}"]
    assert result["ran"] is False
    assert secret["ARN"] not in json.dumps(result)
    [record] = failure_records(caplog)
    assert record.exc_info is not None and secret["ARN"] in str(record.exc_info[1])


def test_a_run_that_checked_the_database_says_it_ran(rm_env: dict[str, str]) -> None:
    assert role_manager.handler({"action": "check"}, None)["ran"] is True


def test_an_invalid_configuration_did_not_run(
    rm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DB_HOST")

    result = role_manager.handler({"action": "check"}, None)

    assert result["ran"] is False
    assert result["errors"] == ["invalid configuration, nothing was run: DB_HOST is not set"]
