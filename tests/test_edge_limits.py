"""The HTTP edge, attacked: huge, slow, half-sent and deeply nested requests on every route.

Each attack is refused with a clear answer, closes its connection, and leaves
nothing behind: no row, no Slack call, no PagerDuty event.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench import attack
from bot.alarms.models import ReceivedMessage
from bot.config import Config
from bot.inbound.models import InboundReceipt
from bot.incidents.models import Incident
from bot.outbox.models import Delivery
from bot.settings import Settings
from handlers.limits import BoundedBodies, RequestLimits
from handlers.server import server_config
from sandbox.alarms import alarm_message
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from sandbox.sns import body as sns_body
from tests.conftest import SLACK_SIGNING_SECRET, TOPIC_ARN
from tests.support import LiveService, loopback_socket, slack_headers, wait_for

MIB = 1024 * 1024
HUGE = 200 * MIB
WEBHOOK_SECRET = "whsec-edge-tests"
ROUTES = ("/sns", "/slack/events", "/pagerduty/webhooks")
# SNS names the topic in a header; without it /sns refuses before reading the body.
SNS_TOPIC = {"x-amz-sns-topic-arn": TOPIC_ARN}


@pytest.fixture
def edge(
    settings: Settings, config: Config, make_service: Callable[..., LiveService]
) -> LiveService:
    """The service with every route configured, PagerDuty webhooks included."""
    secrets = [SecretStr(WEBHOOK_SECRET)]
    return make_service(settings.model_copy(update={"pagerduty_webhook_secrets": secrets}), config)


def host_port(service: LiveService) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(service.url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def rows(service: LiveService) -> dict[str, int]:
    with service.runtime.sessions() as db:
        return {
            model.__tablename__: int(db.scalar(sa.select(sa.func.count()).select_from(model)) or 0)
            for model in (ReceivedMessage, Incident, Delivery, InboundReceipt)
        }


def assert_nothing_happened(
    service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    assert set(rows(service).values()) == {0}
    with slack.lock:
        assert [c.method for c in slack.calls if c.method != "auth.test"] == []
    with pagerduty.lock:
        assert pagerduty.events == []


# -- huge bodies ------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", ROUTES)
def test_a_200_mb_body_is_refused_at_the_cap_and_changes_nothing(
    edge: LiveService,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    path: str,
    chunked: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, port = host_port(edge)
    headers = SNS_TOPIC if path == "/sns" else None
    answer = asyncio.run(
        attack.upload(host, port, path, size=HUGE, chunked=chunked, headers=headers)
    )

    assert answer.status == 413
    assert json.loads(answer.body)["message"] == f"body too large: at most {MIB} bytes"
    assert answer.header("connection") == "close"
    assert answer.closed
    # The answer came while the body was still being sent: the server stopped reading
    # at the cap (what was sent past it sat in socket buffers, never in the process).
    assert answer.sent < HUGE // 4
    refusals = [r.getMessage() for r in caplog.records if r.name == "handlers.limits"]
    why = f"Content-Length {HUGE} over {MIB} bytes" if not chunked else f"body over {MIB} bytes"
    assert len(refusals) == 1 and why in refusals[0]  # logged once; with a length, unread
    assert_nothing_happened(edge, slack, pagerduty)
    # The service still serves.
    assert edge.get("/healthz").status_code == 200


@dataclass
class CountingServer:
    """A route that counts the body bytes it is given, behind the production edge."""

    url: str
    counted: list[int]
    server: uvicorn.Server
    thread: threading.Thread


@pytest.fixture
def counting_server() -> Iterator[CountingServer]:
    counted: list[int] = []

    async def count(request: Request) -> JSONResponse:
        counted.append(0)
        async for piece in request.stream():
            counted[-1] += len(piece)
        return JSONResponse({"counted": counted[-1]})

    settings = Settings()
    limits = RequestLimits.from_settings(settings)
    app = Starlette(
        routes=[Route("/count", count, methods=["POST"])],
        middleware=[Middleware(BoundedBodies, limits)],
    )
    sock, port = loopback_socket()
    server = uvicorn.Server(server_config(app, settings, host="127.0.0.1", port=port))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started)
    yield CountingServer(f"http://127.0.0.1:{port}", counted, server, thread)
    server.should_exit = True
    thread.join(30)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_the_app_is_given_no_more_than_the_cap(
    counting_server: CountingServer, chunked: bool
) -> None:
    answer = asyncio.run(
        attack.upload(
            "127.0.0.1",
            int(counting_server.url.rsplit(":", 1)[1]),
            "/count",
            size=HUGE,
            chunked=chunked,
        )
    )
    assert answer.status == 413
    if chunked:
        [given] = counting_server.counted
        assert 0 < given <= MIB
    else:
        assert counting_server.counted == []  # refused before the route ran


def test_a_body_at_the_cap_is_read_whole(counting_server: CountingServer) -> None:
    port = int(counting_server.url.rsplit(":", 1)[1])
    for chunked in (False, True):
        answer = asyncio.run(attack.upload("127.0.0.1", port, "/count", size=MIB, chunked=chunked))
        assert answer.status == 200
        assert json.loads(answer.body) == {"counted": MIB}


def test_a_body_on_a_health_route_is_refused(edge: LiveService) -> None:
    host, port = host_port(edge)
    answer = asyncio.run(attack.upload(host, port, "/healthz", size=10, chunked=False))
    assert answer.status == 413


# -- slow and half-sent requests ---------------------------------------------------------


@pytest.fixture
def impatient(
    settings: Settings, config: Config, make_service: Callable[..., LiveService]
) -> LiveService:
    """The service with short head and body deadlines."""
    update = {
        "header_timeout_s": 0.5,
        "body_timeout_s": 0.5,
        "pagerduty_webhook_secrets": [SecretStr(WEBHOOK_SECRET)],
    }
    return make_service(settings.model_copy(update=update), config)


def left_half_sent(service: LiveService, path: str, *, in_body: bool) -> attack.Answer:
    """What the service does with a request stopped midway (its head, or its body)."""
    host, port = host_port(service)

    async def attempt() -> attack.Answer:
        # A request to /sns names its topic in a header, as SNS's do: one without is
        # refused before its body is read.
        headers = SNS_TOPIC if path == "/sns" else {}
        request = attack.HalfSent(host, port, path, in_body=in_body, headers=headers)
        await request.start()
        try:
            return await request.outcome(timeout_s=20)
        finally:
            await request.close()

    return asyncio.run(attempt())


@pytest.mark.parametrize("path", ROUTES)
def test_a_half_sent_head_is_answered_408_and_closed(
    impatient: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator, path: str
) -> None:
    answer = left_half_sent(impatient, path, in_body=False)
    assert answer.status == 408
    assert answer.closed
    assert "request head" in json.loads(answer.body)["message"]
    assert_nothing_happened(impatient, slack, pagerduty)


def test_a_head_over_16_kib_is_refused_and_changes_nothing(
    edge: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    host, port = host_port(edge)
    headers = {"X-Padding": "a" * (20 * 1024)}
    answer = asyncio.run(attack.upload(host, port, "/sns", size=10, chunked=False, headers=headers))
    assert answer.status == 431
    assert answer.closed
    assert_nothing_happened(edge, slack, pagerduty)


def test_a_head_over_16_kib_sent_slowly_is_refused(edge: LiveService) -> None:
    """Well-formed header lines, a kibibyte at a time: refused at 16 KiB, not waited for."""
    host, port = host_port(edge)

    async def attempt() -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(b"POST /sns HTTP/1.1\r\nHost: opsbot\r\n")
            for number in range(20):
                writer.write(b"X-Padding-%d: %s\r\n" % (number, b"a" * 1024))
                await writer.drain()
                await asyncio.sleep(0.01)
            async with asyncio.timeout(20):
                return await reader.read()
        finally:
            writer.close()

    # 400 from the parser's cap (the head deadline, 10 s, would have answered 408).
    assert asyncio.run(attempt()).startswith(b"HTTP/1.1 400 ")


def test_a_connection_that_sends_nothing_is_closed(impatient: LiveService) -> None:
    host, port = host_port(impatient)

    async def attempt() -> bool:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            async with asyncio.timeout(20):
                return await reader.read() == b""  # closed, without an answer
        finally:
            writer.close()

    assert asyncio.run(attempt())


@pytest.mark.parametrize("path", ROUTES)
def test_a_stalled_body_is_answered_408_and_closed(
    impatient: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator, path: str
) -> None:
    answer = left_half_sent(impatient, path, in_body=True)
    assert answer.status == 408
    assert answer.header("connection") == "close"
    assert answer.closed
    assert "did not arrive within 0.5 s" in json.loads(answer.body)["message"]
    assert_nothing_happened(impatient, slack, pagerduty)


def test_a_body_dribbled_forever_meets_the_total_deadline(impatient: LiveService) -> None:
    """A byte every 0.1 s never stalls for the whole deadline; the deadline is for the body."""
    host, port = host_port(impatient)

    async def attempt() -> attack.Answer:
        request = attack.HalfSent(host, port, "/sns", in_body=True, headers=SNS_TOPIC)
        await request.start()
        stop = asyncio.Event()

        async def dribble() -> None:
            while not stop.is_set():
                try:
                    await request.dribble(b" ")
                except ConnectionError:
                    return
                await asyncio.sleep(0.1)

        dribbling = asyncio.create_task(dribble())
        try:
            return await request.outcome(timeout_s=30)
        finally:
            stop.set()
            await dribbling
            await request.close()

    answer = asyncio.run(attempt())
    assert answer.status == 408
    assert answer.closed


def test_an_answer_before_the_body_closes_the_connection(
    settings: Settings, config: Config, make_service: Callable[..., LiveService]
) -> None:
    """/slack/events answers 503 unread when Slack is off: the body's rest is never waited for."""
    service = make_service(settings.model_copy(update={"slack_signing_secret": None}), config)
    host, port = host_port(service)
    answer = asyncio.run(attack.upload(host, port, "/slack/events", size=HUGE, chunked=True))
    assert answer.status == 503
    assert answer.header("connection") == "close"
    assert answer.closed
    assert answer.sent < HUGE // 4


# -- deeply nested JSON ------------------------------------------------------------------


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_deep_sns_envelope_gets_400_and_stores_nothing(
    edge: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    answer = edge.post("/sns", content='{"Type": ' + nested(5000) + "}", headers=SNS_TOPIC)
    assert answer.status_code == 400
    assert "nested deeper than 400" in answer.json()["message"]
    assert_nothing_happened(edge, slack, pagerduty)


def test_an_sns_body_of_escaped_quotes_gets_400_and_stores_nothing(
    edge: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    # Unsigned and malformed: refused at once. The depth check before the parse
    # once took minutes over it, and held the whole process meanwhile.
    answer = edge.post("/sns", content=b'"' + b'\\"' * 250_000, headers=SNS_TOPIC)
    assert answer.status_code == 400
    assert_nothing_happened(edge, slack, pagerduty)


def test_deep_alarm_inside_a_signed_sns_message_gets_400_and_stores_nothing(
    edge: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    message = '{"AlarmName": "prod-api-5xx", "Trigger": ' + nested(5000) + "}"
    envelope = sns_signer.notification(message, topic_arn=TOPIC_ARN)
    answer = edge.post("/sns", content=sns_body(envelope))
    assert answer.status_code == 400
    assert "Message: JSON nested deeper than 400" in answer.json()["message"]
    assert_nothing_happened(edge, slack, pagerduty)


def test_an_alarm_nested_up_to_the_limit_is_recorded(
    edge: LiveService, sns_signer: SnsSigner
) -> None:
    alarm = json.loads(alarm_message(name="prod-api-5xx", state="ALARM"))
    alarm["Extra"] = json.loads(nested(399))  # 400 levels with the alarm's own object
    envelope = sns_signer.notification(json.dumps(alarm), topic_arn=TOPIC_ARN)
    answer = edge.post("/sns", content=sns_body(envelope))
    assert answer.status_code == 200
    assert rows(edge)["incidents"] == 1


@pytest.mark.parametrize(
    "form, content_type",
    [
        (False, "application/json"),
        (False, "application/json; charset=utf-8"),  # Bolt drops the parameter
        (True, "application/x-www-form-urlencoded"),
    ],
    ids=["json-body", "json-body-with-charset", "payload-field"],
)
def test_deep_slack_body_gets_400_before_bolt_and_changes_nothing(
    edge: LiveService,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    form: bool,
    content_type: str,
) -> None:
    document = ' [{"type": "block_actions", "actions": ' + nested(5000) + "}]"
    body = urllib.parse.urlencode({"payload": document}) if form else document
    headers = {**slack_headers(SLACK_SIGNING_SECRET, body), "content-type": content_type}
    answer = edge.post("/slack/events", content=body, headers=headers)
    assert answer.status_code == 400
    assert "nested deeper than 400" in answer.json()["message"]
    assert_nothing_happened(edge, slack, pagerduty)


def test_deep_payload_in_lowercase_percent_escapes_gets_400_and_changes_nothing(
    edge: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    document = '{"type": "block_actions", "actions": ' + nested(5000) + "}"
    body = re.sub(
        r"%[0-9A-F]{2}",
        lambda escape: escape.group().lower(),
        urllib.parse.urlencode({"payload": document}),
    )
    assert "%5b" in body and "%5B" not in body
    headers = {
        **slack_headers(SLACK_SIGNING_SECRET, body),
        "content-type": "application/x-www-form-urlencoded",
    }
    answer = edge.post("/slack/events", content=body, headers=headers)
    assert answer.status_code == 400
    assert "nested deeper than 400" in answer.json()["message"]
    assert_nothing_happened(edge, slack, pagerduty)


def test_slack_body_that_is_not_utf8_gets_400(edge: LiveService) -> None:
    body = b"payload=\xff\xfe"
    headers = slack_headers(SLACK_SIGNING_SECRET, body.decode("latin-1"))
    answer = edge.post("/slack/events", content=body, headers=headers)
    assert answer.status_code == 400


def test_deep_pagerduty_webhook_gets_400_and_changes_nothing(
    edge: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    body = (
        '{"event": {"id": "E1", "event_type": "incident.triggered", "data": ' + nested(5000) + "}}"
    ).encode()
    headers = {
        "x-pagerduty-signature": PagerDutyEmulator.sign(body, WEBHOOK_SECRET),
        "x-webhook-id": "W1",
    }
    answer = edge.post("/pagerduty/webhooks", content=body, headers=headers)
    assert answer.status_code == 400
    assert "nested deeper than 400" in answer.json()["message"]
    assert_nothing_happened(edge, slack, pagerduty)


# JSON between systems is UTF-8. Read as UTF-8, a UTF-16 body's bytes hold a quote that
# is half of "\u0122", which hid the brackets after it from the depth check but not
# from a parser that detects UTF-16: Python's recursion limit, a 500 with a traceback.
DISGUISED = '["\u0122", ' + nested(50_000) + "]"


@pytest.mark.parametrize(
    "encoding, refusal",
    [
        # Without a byte order mark, these bytes are all below 0x80: UTF-8 that is not JSON.
        ("utf-16-le", "body is not JSON"),
        ("utf-32-be", "body is not JSON"),
        ("utf-16", "body is not UTF-8"),
    ],
)
def test_deep_sns_body_not_in_utf8_gets_400_and_stores_nothing(
    edge: LiveService,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    encoding: str,
    refusal: str,
) -> None:
    answer = edge.post("/sns", content=DISGUISED.encode(encoding), headers=SNS_TOPIC)
    assert answer.status_code == 400
    assert answer.json()["message"] == f"not an SNS message: {refusal}"
    assert_nothing_happened(edge, slack, pagerduty)


def test_a_signed_sns_message_in_utf16_gets_400_and_stores_nothing(
    edge: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    envelope = sns_signer.notification(
        alarm_message(name="prod-api-5xx", state="ALARM"), topic_arn=TOPIC_ARN
    )
    answer = edge.post("/sns", content=sns_body(envelope).decode().encode("utf-16"))
    assert answer.status_code == 400
    assert "not UTF-8" in answer.json()["message"]
    assert_nothing_happened(edge, slack, pagerduty)


PAGERDUTY_EVENT = '{"event": {"id": "E1", "event_type": "incident.triggered", "data": %s}}'


@pytest.mark.parametrize(
    "document, encoding, refusal",
    [
        # Read by the encoding it is in: the depth check sees what a parser would.
        (PAGERDUTY_EVENT % DISGUISED, "utf-16-le", "nested deeper than 400"),
        (PAGERDUTY_EVENT % DISGUISED, "utf-16", "nested deeper than 400"),
        (PAGERDUTY_EVENT % "{}", "utf-16", "the body is not UTF-8"),
    ],
    ids=["deep", "deep-with-bom", "shallow"],
)
def test_signed_pagerduty_webhook_not_in_utf8_gets_400_and_changes_nothing(
    edge: LiveService,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    document: str,
    encoding: str,
    refusal: str,
) -> None:
    body = document.encode(encoding)
    headers = {
        "x-pagerduty-signature": PagerDutyEmulator.sign(body, WEBHOOK_SECRET),
        "x-webhook-id": "W1",
    }
    answer = edge.post("/pagerduty/webhooks", content=body, headers=headers)
    assert answer.status_code == 400
    assert refusal in answer.json()["message"]
    assert_nothing_happened(edge, slack, pagerduty)
