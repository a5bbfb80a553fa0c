"""The peer for a click's effect: a plain slack-bolt app that does the work in its listener.

Served exactly as the bare app (`bench.bare_app`: the same ASGI server, route and
Bolt options). Its Acknowledge listener acks, then, in the same listener thread,
asks Slack who clicked (`users.info`), acknowledges the PagerDuty incident named by
the button's value as that person (REST `PUT /incidents/{id}` with their email in
`From`) and updates the clicked message (`chat.update`), with the clients'
defaults: no outbox, no retry of a Slack 429. Every other request kind only acks.
It is what a first version of opsbot would be, and what a click's effect is
compared against (bench/click.py).

    SLACK_SIGNING_SECRET=... SLACK_BOT_TOKEN=... SLACK_API_URL=... \
    PAGERDUTY_API_TOKEN=... PAGERDUTY_API_URL=... SSL_CERT_FILE=... \
        python -m bench.plain_app --port 3002
"""

from __future__ import annotations

import argparse
import logging
import os
import ssl
from typing import Any

import pagerduty
import uvicorn
from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bench.bare_app import _only_ack, create_app
from bench.request_kinds import KINDS
from bot.log import configure_logging
from bot.settings import Settings
from handlers.server import server_config

ACKNOWLEDGE = "incident_acknowledge"
log = logging.getLogger("plain.slack")


def build_bolt_app(
    *, signing_secret: str, token: str, api_url: str, pagerduty_client: pagerduty.RestApiV2Client
) -> App:
    app = App(
        signing_secret=signing_secret,
        client=WebClient(token=token, base_url=api_url),
        token_verification_enabled=False,
        logger=logging.getLogger("plain.slack"),
    )

    def acknowledge(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user = body["user"]["id"]
        incident_id = body["actions"][0]["value"]
        channel = body["container"]["channel_id"]
        ts = body["container"]["message_ts"]
        try:
            email = client.users_info(user=user)["user"]["profile"]["email"]
            answer = pagerduty_client.put(
                f"/incidents/{incident_id}",
                json={"incident": {"type": "incident_reference", "status": "acknowledged"}},
                headers={"From": email},
            )
            if answer.status_code >= 400:
                log.warning("PagerDuty answered %s for %s", answer.status_code, incident_id)
                return
            client.chat_update(channel=channel, ts=ts, text=f"Acknowledged by <@{user}>")
        except SlackApiError as exc:
            log.warning("Slack refused: %s", exc.response.get("error"))

    app.action(ACKNOWLEDGE)(acknowledge)
    for kind in KINDS:
        if kind.command is not None:
            app.command(kind.command)(_only_ack)
        elif kind.action_id is not None and kind.action_id != ACKNOWLEDGE:
            app.action(kind.action_id)(_only_ack)
    return app


def main() -> int:
    root = argparse.ArgumentParser(prog="python -m bench.plain_app", description=__doc__)
    root.add_argument("--host", default="127.0.0.1")
    root.add_argument("--port", type=int, required=True)
    args = root.parse_args()
    secret = os.environ["SLACK_SIGNING_SECRET"]
    configure_logging("INFO", [secret])
    tls = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"))
    pd = pagerduty.RestApiV2Client(
        os.environ["PAGERDUTY_API_TOKEN"], base_url=os.environ["PAGERDUTY_API_URL"], verify=tls
    )
    bolt = build_bolt_app(
        signing_secret=secret,
        token=os.environ["SLACK_BOT_TOKEN"],
        api_url=os.environ["SLACK_API_URL"],
        pagerduty_client=pd,
    )
    config = server_config(create_app(bolt), Settings(), host=args.host, port=args.port)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
