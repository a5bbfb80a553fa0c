"""`opsbot dev`: everything opsbot talks to, on loopback, in one process.

`Sandbox.start()` brings up the Slack and PagerDuty emulators, an SNS signer,
moto in server mode behind the sandbox's AWS endpoint (front_door.py), seeds the
demo world (world.py) and starts the ECS rollout driver. `settings()` and
`config()` then give the real service everything pointed at them. Nothing here
reads the environment, and nothing leaves the machine.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from bot.adapters import aws
from bot.config import Config, load_config_text
from bot.settings import Settings
from sandbox import appconfig, ecr, ecs, lambdas, ssm, world
from sandbox.appconfig import AppConfigGaps, AppConfigIds
from sandbox.front_door import AwsFrontDoor
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from sandbox.tls import TestCA, make_test_ca

log = logging.getLogger(__name__)

SLACK_TOKEN = "xoxb-sandbox"  # noqa: S105  # the Slack emulator's own fake token
PAGERDUTY_TOKEN = "pd-sandbox-token"  # noqa: S105  # the PagerDuty emulator's
AWS_KEY = "sandbox"  # moto accepts any credentials; these never leave loopback


def demo_config_text() -> str:
    return resources.files("sandbox").joinpath("demo_config.yaml").read_text("utf-8")


def demo_config(ids: AppConfigIds) -> Config:
    """The demo configuration, with the AppConfig ids of this sandbox's world."""
    text = Template(demo_config_text()).substitute(
        APPCONFIG_APPLICATION_ID=ids.application,
        APPCONFIG_ENVIRONMENT_ID=ids.environment,
        APPCONFIG_PROFILE_ID=ids.profile,
        APPCONFIG_STRATEGY_ID=ids.strategy,
    )
    return load_config_text(text, source="sandbox/demo_config.yaml")


@dataclass
class Secrets:
    """Made up at each start; shown masked."""

    slack_signing_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    pagerduty_webhook_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    routing_key: str = field(default_factory=lambda: secrets.token_hex(16))


class Sandbox:
    """The emulated world around one opsbot service at `service_url`."""

    def __init__(
        self,
        *,
        var_dir: Path,
        service_url: str,
        rollout_s: float = 8.0,
        appconfig_minute_s: float = 1.0,
    ) -> None:
        self.var_dir = var_dir
        self.service_url = service_url.rstrip("/")
        self.rollout_s = rollout_s
        self.secrets = Secrets()
        self.ca: TestCA | None = None
        self.slack = SlackEmulator(token=SLACK_TOKEN)
        self.pagerduty: PagerDutyEmulator | None = None
        self.signer: SnsSigner | None = None
        self.moto: Any = None
        self.moto_url = ""
        self.appconfig = AppConfigGaps(minute_s=appconfig_minute_s)
        self.role_managers = lambdas.stand_ins()
        self.front_door: AwsFrontDoor | None = None
        self.rollouts = ecs.RolloutDriver(rollout_s=rollout_s)
        self.appconfig_ids: AppConfigIds | None = None
        self._started: list[Any] = []
        self._clients: dict[str, Any] = {}

    # -- life ------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Everything up and the demo world seeded; `stop()` undoes it even half way."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        tls_dir = self.var_dir / "tls"
        shutil.rmtree(tls_dir, ignore_errors=True)
        self.ca = make_test_ca(tls_dir)
        self._slack_world()
        self._started.append(self.slack.start())
        self.pagerduty = self._pagerduty_world(self.ca)
        self._started.append(self.pagerduty.start())
        self.pagerduty.subscribe_webhook(
            f"{self.service_url}/pagerduty/webhooks", self.secrets.pagerduty_webhook_secret
        )
        self.signer = SnsSigner(tls=self.ca.server_context())
        self._started.append(self.signer.start())
        self._start_moto()
        self.front_door = AwsFrontDoor(
            moto_url=self.moto_url, appconfig=self.appconfig, functions=self.role_managers
        )
        self._started.append(self.front_door.start())
        self._use_sandbox_credentials()
        self._seed()

    def stop(self) -> None:
        self.rollouts.stop()
        for part in reversed(self._started):
            try:
                part.stop()
            except Exception:
                log.exception("sandbox: stopping %s failed", type(part).__name__)
        self._started.clear()
        if self.moto is not None:
            self.moto.stop()
            self.moto = None

    def _start_moto(self) -> None:
        from moto.server import ThreadedMotoServer

        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto.start()
        host, port = self.moto.get_host_and_port()
        self.moto_url = f"http://{host}:{port}"
        # moto's documented switch to its Docker-free Lambda backend: a function that
        # is not a role manager answers with its own event instead of needing Docker.
        request = urllib.request.Request(  # noqa: S310  # our own moto on loopback
            f"{self.moto_url}/moto-api/config",
            data=json.dumps({"lambda": {"use_docker": False}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass

    @staticmethod
    def _use_sandbox_credentials() -> None:
        # boto3's default session, process-wide: every client opsbot builds in this
        # process signs with these fake keys and whatever the shell holds (a profile,
        # SSO, real keys) is never looked at. Clients always name the sandbox's
        # endpoint, so nothing reaches AWS.
        import boto3

        boto3.setup_default_session(
            aws_access_key_id=AWS_KEY, aws_secret_access_key=AWS_KEY, region_name=world.REGION
        )

    def client(self, service: str) -> Any:
        """A boto3 client on the sandbox's AWS endpoint (made once; boto3 clients are
        safe to share between threads)."""
        assert self.front_door is not None
        found = self._clients.get(service)
        if found is None:
            found = aws.client(service, region=world.REGION, endpoint_url=self.front_door.url)
            self._clients[service] = found
        return found

    def _seed(self) -> None:
        ecr.seed(self.client, moto_url=self.moto_url)
        ecs.seed(self.client)
        self.appconfig_ids = appconfig.seed(self.client)
        ssm.seed(self.client)
        lambdas.seed(self.client)
        self.rollouts.start()
        self.rollouts.settle_now()
        appconfig.settle(self.appconfig)

    def _slack_world(self) -> None:
        slack = self.slack
        slack.users.clear()
        for user in world.USERS:
            slack.add_user(user.slack_id, user.name, email=user.email, real_name=user.real_name)
        for channel_id, name in world.CHANNELS:
            slack.add_channel(channel_id, name)
        for group_id, handle, members in world.USERGROUPS:
            slack.add_usergroup(group_id, handle, list(members))

    def _pagerduty_world(self, ca: TestCA) -> PagerDutyEmulator:
        pd = PagerDutyEmulator(tls=ca.server_context(), api_token=PAGERDUTY_TOKEN)
        for user in world.USERS:
            pd.add_user(user.pagerduty_id, user.real_name, user.email)
        pd.add_user("POPSBOT", "opsbot", world.PAGERDUTY_BOT_EMAIL)
        pd.add_escalation_policy(world.PAGERDUTY_POLICY, "Checkout production")
        pd.add_schedule(world.PAGERDUTY_SCHEDULE, "Checkout primary")
        pd.add_oncall(
            policy_id=world.PAGERDUTY_POLICY,
            level=1,
            user_id="PALICE",
            schedule_id=world.PAGERDUTY_SCHEDULE,
        )
        pd.add_oncall(policy_id=world.PAGERDUTY_POLICY, level=2, user_id="PBOB")
        pd.add_service(
            world.PAGERDUTY_SERVICE,
            "checkout-prod",
            routing_key=self.secrets.routing_key,
            policy_id=world.PAGERDUTY_POLICY,
        )
        return pd

    # -- what the service is given -------------------------------------------------------

    def settings(self, *, port: int, host: str = "127.0.0.1", log_level: str = "INFO") -> Settings:
        """The settings the sandbox's service runs with: these and the defaults, the
        environment unread (a real SLACK_APP_TOKEN in the shell stays out)."""
        assert self.ca and self.pagerduty and self.signer and self.front_door
        settings = Settings.given(
            database_url="",  # the embedded default: SQLite under var_dir
            var_dir=self.var_dir,
            config_path=None,
            host=host,
            port=port,
            log_level=log_level,
            public_url=self.service_url,
            slack_bot_token=SLACK_TOKEN,
            slack_signing_secret=self.secrets.slack_signing_secret,
            slack_api_url=self.slack.api_url,
            pagerduty_api_token=PAGERDUTY_TOKEN,
            pagerduty_api_url=self.pagerduty.url,
            pagerduty_events_url=self.pagerduty.url,
            pagerduty_webhook_secrets=[self.secrets.pagerduty_webhook_secret],
            sns_topic_arns=[world.TOPIC_ARN],
            sns_url_pattern=self.signer.url_pattern,
            alarm_queue_url=None,
            ssl_cert_file=self.ca.ca_file,
            aws_endpoint_url=self.front_door.url,
            aws_region=world.REGION,
        )
        # The demo config's routes page through PD_KEY_SANDBOX: given here, not
        # through os.environ (see Settings.with_secrets).
        return settings.with_secrets({world.ROUTING_KEY_ENV: self.secrets.routing_key})

    def config(self) -> Config:
        assert self.appconfig_ids is not None
        return demo_config(self.appconfig_ids)
