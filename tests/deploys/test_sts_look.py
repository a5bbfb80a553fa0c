"""The account a pinned `aws:` is checked against is asked of STS once and briefly: while
STS fails, each check fails on its own after one try instead of retrying for minutes
while other requests queue behind it; once known, the account is kept."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from bot.adapters.aws import AwsClients
from sandbox.server import HttpRequest, HttpResponse, LoopbackServer

IDENTITY = (
    '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
    "<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/ci</Arn>"
    "<UserId>AIDA</UserId><Account>123456789012</Account></GetCallerIdentityResult>"
    "<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"
    "</GetCallerIdentityResponse>"
)


class Sts:
    """STS on loopback: unavailable until `heal`, then answering who the caller is."""

    def __init__(self) -> None:
        self.calls = 0
        self.healed = False

    def handle(self, request: HttpRequest) -> HttpResponse:
        self.calls += 1
        if not self.healed:
            return HttpResponse(503, b"<Error><Code>ServiceUnavailable</Code></Error>")
        return HttpResponse(200, IDENTITY.encode(), {"content-type": "text/xml"})


@pytest.fixture
def sts(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sts, str]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    fake = Sts()
    server = LoopbackServer(fake.handle).start()
    try:
        yield fake, server.url
    finally:
        server.stop()


def test_a_failing_sts_is_asked_once_a_check_and_a_known_account_is_kept(
    sts: tuple[Sts, str],
) -> None:
    fake, url = sts
    clients = AwsClients(region="us-east-1", endpoint_url=url)

    with pytest.raises((BotoCoreError, ClientError)):
        clients.elsewhere(account_id="123456789012", region=None)
    assert fake.calls == 1  # tried once, not through the default client's retries
    with pytest.raises((BotoCoreError, ClientError)):
        clients.elsewhere(account_id="123456789012", region=None)
    assert fake.calls == 2  # a failure is not kept: the next check asks again

    fake.healed = True
    assert clients.elsewhere(account_id="123456789012", region="us-east-1") is None
    assert "not 111122223333 (aws.account_id)" in str(
        clients.elsewhere(account_id="111122223333", region=None)
    )
    assert fake.calls == 3  # known from then on
