"""/sns: a certificate URL on the SNS host of no AWS region is refused on its face.

Such a host answers nothing (no such name), which looked like an outage of
AWS's: 503, retried, and a fetch slot held each time, so forged messages could
crowd out the fetches of genuine ones. Now it is a 403 before anything is
fetched. A genuine region's host that cannot be reached is still an outage
(503, SNS retries). Every fetch goes through a proxy on loopback here, which
counts the attempts and answers none: nothing reaches the network.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator

import boto3
import pytest

from bot.aws_regions import ISOLATED_REGIONS
from bot.config import Config
from bot.settings import DEFAULT_SNS_URL_PATTERN, Settings
from bot.sns.confirm import confirm_subscription
from bot.sns.envelope import Envelope
from bot.sns.verify import UrlNotAllowed, check_url
from tests.conftest import TOPIC_ARN
from tests.support import LiveService, metric

HEADERS = {"content-type": "text/plain", "x-amz-sns-message-type": "Notification"}
FUTURE_TOPIC = "arn:aws:sns:xx-future-1:123456789012:alarms"


class DeadProxy:
    """A proxy on loopback that counts the connections made to it and closes each at once."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[DeadProxy]:
    dead = DeadProxy()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", dead.url)
    yield dead
    dead.close()


@pytest.fixture
def aws_hosts(
    settings: Settings, config: Config, make_service: Callable[..., LiveService]
) -> LiveService:
    """The service with the default certificate URL pattern: SNS's own hosts only."""
    topics = [TOPIC_ARN, FUTURE_TOPIC]
    return make_service(
        settings.model_copy(
            update={"sns_url_pattern": DEFAULT_SNS_URL_PATTERN, "sns_topic_arns": topics}
        ),
        config,
    )


def forged(cert_url: str, *, topic_arn: str = TOPIC_ARN, message_id: str = "m-1") -> str:
    """A notification with a signature nobody made: only its certificate URL matters."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": topic_arn,
            "Message": "{}",
            "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "SignatureVersion": "2",
            "Signature": "AAAA",
            "SigningCertURL": cert_url,
        }
    )


@pytest.mark.parametrize(
    "host",
    [
        "sns.zz-nowhere-9.amazonaws.com",
        "sns.us-east-9.amazonaws.com",
        "sns.cn-north-1.amazonaws.com",  # China's regions answer under amazonaws.com.cn
        "sns.us-east-1.amazonaws.com.cn",
    ],
)
def test_a_certificate_url_of_no_aws_region_gets_403_and_nothing_is_fetched(
    aws_hosts: LiveService, proxy: DeadProxy, host: str
) -> None:
    url = f"https://{host}/SimpleNotificationService-x.pem"
    for attempt in range(3):
        answer = aws_hosts.post(
            "/sns", content=forged(url, message_id=f"m-{attempt}"), headers=HEADERS
        )
        assert answer.status_code == 403
        assert answer.json()["message"] == "signing certificate URL not allowed"
    assert proxy.connections == 0
    refused = metric(aws_hosts, "opsbot_alarm_notifications_total", via="https", outcome="refused")
    assert refused == 3


@pytest.mark.parametrize(
    ("host", "topic_arn"),
    [
        ("sns.us-east-1.amazonaws.com", TOPIC_ARN),
        # A region newer than opsbot's table: the region of an allowed topic is taken.
        ("sns.xx-future-1.amazonaws.com", FUTURE_TOPIC),
    ],
    ids=["us-east-1", "the-topics-own-region"],
)
def test_a_genuine_regions_host_out_of_reach_is_an_outage_and_gets_503(
    aws_hosts: LiveService, proxy: DeadProxy, host: str, topic_arn: str
) -> None:
    url = f"https://{host}/SimpleNotificationService-x.pem"
    answer = aws_hosts.post("/sns", content=forged(url, topic_arn=topic_arn), headers=HEADERS)
    assert answer.status_code == 503
    assert answer.json()["message"] == "signing certificate not available; retry"
    assert proxy.connections >= 1


@pytest.mark.parametrize(
    ("url", "topic_arn", "allowed"),
    [
        ("https://sns.us-gov-west-1.amazonaws.com/S.pem", TOPIC_ARN, True),
        ("https://SNS.EU-WEST-1.AMAZONAWS.COM/S.pem", TOPIC_ARN, True),
        ("https://sns.zz-nowhere-9.amazonaws.com/S.pem", TOPIC_ARN, False),
        ("https://sns.zz-nowhere-9.amazonaws.com./S.pem", TOPIC_ARN, False),
        ("https://sns.xx-future-1.amazonaws.com/S.pem", TOPIC_ARN, False),
        ("https://sns.xx-future-1.amazonaws.com/S.pem", FUTURE_TOPIC, True),
        ("https://sns.xx-future-1.amazonaws.com/S.pem", "not-an-arn", False),
        ("https://sns.us-isob-east-1.amazonaws.com/S.pem", TOPIC_ARN, True),
        ("https://sns.us-isob-east-9.amazonaws.com/S.pem", TOPIC_ARN, False),
    ],
)
def test_the_region_check_on_any_pattern_that_admits_sns_hosts(
    url: str, topic_arn: str, allowed: bool
) -> None:
    # An operator's own, looser pattern gets the same check on SNS's hosts.
    loose = re.compile(r"^https://[^/]+/", re.IGNORECASE)
    if allowed:
        check_url(url, loose, pem=True, topic_arn=topic_arn)
    else:
        with pytest.raises(UrlNotAllowed, match="URL not allowed"):
            check_url(url, loose, pem=True, topic_arn=topic_arn)


def test_the_isolated_regions_cover_every_one_botocore_knows() -> None:
    """A new isolated region reaches the list when botocore (pinned) is upgraded."""
    session = boto3.session.Session()
    for partition, codes in ISOLATED_REGIONS.items():
        known = set(session.get_available_regions("sns", partition_name=partition))
        assert known <= set(codes), f"{partition}: add {sorted(known - set(codes))}"


def test_a_topic_in_a_region_newer_than_the_table_can_confirm_its_subscription() -> None:
    """The SubscribeURL gets the certificate URL's allowance for the topic's own region:
    without it, the subscription of such a topic is never confirmed and no alarm comes."""
    fetched: list[str] = []
    future = "https://sns.xx-future-1.amazonaws.com/?Action=ConfirmSubscription&Token=t"

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return b"<ConfirmSubscriptionResponse/>"

    def envelope(topic_arn: str) -> Envelope:
        return Envelope(
            type="SubscriptionConfirmation",
            message_id="m-1",
            topic_arn=topic_arn,
            message="confirm",
            timestamp="2026-12-06T10:00:00Z",
            signature_version="2",
            signature="",
            signing_cert_url="https://sns.xx-future-1.amazonaws.com/S.pem",
            token="t",
            subscribe_url=future,
        )

    pattern = re.compile(DEFAULT_SNS_URL_PATTERN)
    confirm_subscription(envelope(FUTURE_TOPIC), url_pattern=pattern, fetch=fetch)
    assert fetched == [future]
    with pytest.raises(UrlNotAllowed):  # another topic's region gives it no allowance
        confirm_subscription(envelope(TOPIC_ARN), url_pattern=pattern, fetch=fetch)
    assert fetched == [future]
