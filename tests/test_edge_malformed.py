"""/slack/events: a body Bolt cannot parse is refused with a 4xx, signed or not, and never a 500.

The signature is checked on the raw body before anything parses it: unsigned
(or badly signed) is 401 whatever the body holds; signed but not of a Slack
request's shape is 400. Either way: one WARNING line that does not quote the
body, no traceback, nothing stored and nobody told.
"""

from __future__ import annotations

import logging
import time

import httpx
import pytest
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.inbound.models import InboundReceipt
from bot.outbox.models import Delivery
from sandbox.slack import SlackEmulator
from sandbox.slack_requests import FORM, JSON
from tests.conftest import SLACK_SIGNING_SECRET
from tests.support import LiveService, slack_headers

# JSON of another shape than a Slack request's, as the body or as its `payload` field.
MALFORMED = [
    ("[]", JSON),
    ("payload=%5B%5D", FORM),
    ("payload=null", FORM),
    ('{"team":5}', JSON),
    ('{"authorizations":5}', JSON),
    ("1", JSON),
    ('{"authorizations":[5]}', JSON),
    ('{"event":{"user":5}}', JSON),
    ("payload=%22x%22", FORM),
]
IDS = [body for body, _ in MALFORMED]
LOGGER = "handlers.slack_events"


def stored(service: LiveService) -> int:
    with service.runtime.sessions() as db:
        return sum(
            int(db.scalar(sa.select(sa.func.count()).select_from(model)) or 0)
            for model in (InboundReceipt, Delivery, AuditRecord)
        )


def assert_refused_quietly(
    caplog: pytest.LogCaptureFixture, service: LiveService, slack: SlackEmulator, body: str
) -> None:
    """One WARNING from the route, without the body; no traceback; no trace anywhere else."""
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
    [line] = [r for r in caplog.records if r.name == LOGGER]
    assert line.levelno == logging.WARNING
    if len(body) > 2:
        assert body not in line.getMessage()
    assert stored(service) == 0
    with slack.lock:
        assert [c.method for c in slack.calls if c.method != "auth.test"] == []


@pytest.mark.parametrize(("body", "content_type"), MALFORMED, ids=IDS)
def test_an_unsigned_body_bolt_cannot_parse_gets_401(
    service: LiveService,
    slack: SlackEmulator,
    caplog: pytest.LogCaptureFixture,
    body: str,
    content_type: str,
) -> None:
    with caplog.at_level(logging.INFO):
        answer = service.post("/slack/events", content=body, headers={"content-type": content_type})
    assert answer.status_code == 401
    assert answer.json()["message"] == "invalid request"
    assert_refused_quietly(caplog, service, slack, body)


@pytest.mark.parametrize(("body", "content_type"), MALFORMED, ids=IDS)
def test_a_badly_signed_body_bolt_cannot_parse_gets_401(
    service: LiveService,
    slack: SlackEmulator,
    caplog: pytest.LogCaptureFixture,
    body: str,
    content_type: str,
) -> None:
    headers = slack_headers("not-the-secret", body) | {"content-type": content_type}
    with caplog.at_level(logging.INFO):
        answer = service.post("/slack/events", content=body, headers=headers)
    assert answer.status_code == 401
    assert_refused_quietly(caplog, service, slack, body)


@pytest.mark.parametrize(("body", "content_type"), MALFORMED, ids=IDS)
def test_a_signed_body_bolt_cannot_parse_gets_400(
    service: LiveService,
    slack: SlackEmulator,
    caplog: pytest.LogCaptureFixture,
    body: str,
    content_type: str,
) -> None:
    headers = slack_headers(SLACK_SIGNING_SECRET, body) | {"content-type": content_type}
    with caplog.at_level(logging.INFO):
        answer = service.post("/slack/events", content=body, headers=headers)
    assert answer.status_code == 400
    assert answer.json()["message"] == "body is not a Slack request"
    assert_refused_quietly(caplog, service, slack, body)


@pytest.mark.parametrize(
    "timestamp", ["soon", "1" * 5000, "", "1e9"], ids=["word", "5000-digits", "empty", "float"]
)
def test_a_timestamp_that_is_not_a_number_gets_401(
    service: LiveService,
    slack: SlackEmulator,
    caplog: pytest.LogCaptureFixture,
    timestamp: str,
) -> None:
    body = '{"type":"url_verification","challenge":"c"}'
    headers = slack_headers(SLACK_SIGNING_SECRET, body) | {"content-type": JSON}
    headers["X-Slack-Request-Timestamp"] = timestamp
    with caplog.at_level(logging.INFO):
        answer = service.post("/slack/events", content=body, headers=headers)
    assert answer.status_code == 401
    assert_refused_quietly(caplog, service, slack, body)


@pytest.mark.parametrize("header", ["X-Slack-Request-Timestamp", "X-Slack-Signature"])
def test_a_signature_header_sent_twice_gets_401(
    service: LiveService, slack: SlackEmulator, caplog: pytest.LogCaptureFixture, header: str
) -> None:
    # A captured request with a second copy of a header: the route and Bolt must not
    # read different copies (Bolt's own check raised on a timestamp like this one).
    body = '{"type":"url_verification","challenge":"c"}'
    headers = list((slack_headers(SLACK_SIGNING_SECRET, body) | {"content-type": JSON}).items())
    headers.append((header, "soon"))
    with caplog.at_level(logging.INFO):
        answer = httpx.post(service.url + "/slack/events", content=body, headers=headers)
    assert answer.status_code == 401
    assert_refused_quietly(caplog, service, slack, body)


def test_an_unsigned_well_formed_request_is_refused_before_bolt_parses_it(
    service: LiveService, slack: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    body = '{"type":"url_verification","challenge":"c"}'
    stale = slack_headers(SLACK_SIGNING_SECRET, body, timestamp=int(time.time()) - 600)
    with caplog.at_level(logging.INFO):
        answer = service.post("/slack/events", content=body, headers=stale | {"content-type": JSON})
    assert answer.status_code == 401
    # Bolt's own check logs the body it refuses: it is never reached.
    assert not [r for r in caplog.records if r.name.startswith("opsbot.slack")]
    assert_refused_quietly(caplog, service, slack, body)


def test_a_signed_slack_request_still_gets_through(service: LiveService) -> None:
    body = '{"type":"url_verification","challenge":"c-42"}'
    headers = slack_headers(SLACK_SIGNING_SECRET, body) | {"content-type": JSON}
    answer = service.post("/slack/events", content=body, headers=headers)
    assert answer.status_code == 200
    assert "c-42" in answer.text


def test_slacks_unsigned_certificate_check_gets_200_and_does_nothing(
    service: LiveService, slack: SlackEmulator
) -> None:
    # Slack checks a slash command URL's certificate with an unsigned form.
    for body in ("ssl_check=1&token=legacy-verification-token", "ssl_check=1"):
        answer = service.post("/slack/events", content=body, headers={"content-type": FORM})
        assert answer.status_code == 200
    assert stored(service) == 0
    # Anything beside it must be signed: a `payload` does not ride along unsigned.
    for body in (
        "ssl_check=1&payload=%7B%22type%22%3A%22block_actions%22%7D",
        "ssl_check=1&ssl_check=1&token=t",
        "ssl_check=0",
    ):
        answer = service.post("/slack/events", content=body, headers={"content-type": FORM})
        assert answer.status_code == 401, body
    with slack.lock:
        assert [c.method for c in slack.calls if c.method != "auth.test"] == []


def test_only_a_body_of_a_certificate_checks_size_is_read_as_one_unsigned(
    service: LiveService, slack: SlackEmulator
) -> None:
    # Parsing an unsigned form costs the event loop ~0.3 s a MiB: a body longer than
    # Slack's few dozen bytes is refused on its signature before anything parses it.
    fields = "ssl_check=1&token=" + "t" * 300
    answer = service.post("/slack/events", content=fields, headers={"content-type": FORM})
    assert answer.status_code == 401
    flood = "token=" + "%41=%41&" * 4096 + "ssl_check=1"
    answer = service.post("/slack/events", content=flood, headers={"content-type": FORM})
    assert answer.status_code == 401
    assert stored(service) == 0
    with slack.lock:
        assert [c.method for c in slack.calls if c.method != "auth.test"] == []
