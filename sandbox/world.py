"""The sandbox's demo world: one app, `checkout`, in a protected `prod` and an open `staging`.

Names here are shared by the demo configuration (demo_config.yaml), the moto
seeding modules (ecr, ecs, appconfig, ssm, lambdas) and the console. Each
seeding module talks to moto through boto3, like opsbot does; where moto has a
gap (an ECS rollout never finishes, no AppConfig environments or deployments,
Lambda invoke needs Docker) the module that fills it says how.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
APP = "checkout"
REPOSITORY = "checkout"
CONTAINER = "app"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:alarms"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"

# Clients for the demo world: a boto3 client per service name, pointed at moto.
Clients = Callable[[str], Any]


@dataclass(frozen=True)
class DemoEnvironment:
    name: str
    cluster: str
    service: str
    image_tag: str  # what runs at start
    desired_count: int
    role_manager: str  # the Lambda function's name
    roles_provisioned: bool  # whether the role manager finds the roles in place


ENVIRONMENTS = (
    DemoEnvironment(
        name="prod",
        cluster="prod",
        service="checkout",
        image_tag="1.4.0",
        desired_count=3,
        role_manager="checkout-prod-role-manager",
        roles_provisioned=True,
    ),
    DemoEnvironment(
        name="staging",
        cluster="staging",
        service="checkout",
        image_tag="1.4.1",
        desired_count=1,
        role_manager="checkout-staging-role-manager",
        roles_provisioned=False,
    ),
)


def environment(name: str) -> DemoEnvironment:
    return next(e for e in ENVIRONMENTS if e.name == name)


@dataclass(frozen=True)
class DemoUser:
    slack_id: str
    name: str
    real_name: str
    email: str
    pagerduty_id: str
    role: str  # what they may do in the demo, shown in the console


USERS = (
    DemoUser(
        "U0ALICE",
        "alice",
        "Alice Example",
        "alice@example.com",
        "PALICE",
        "on call (level 1), deploys prod and staging",
    ),
    DemoUser(
        "U0BOB",
        "bob",
        "Bob Example",
        "bob@example.com",
        "PBOB",
        "on call (level 2), deploys prod and staging",
    ),
    DemoUser(
        "U0CAROL",
        "carol",
        "Carol Example",
        "carol@example.com",
        "PCAROL",
        "developer: deploys staging only, not on call (prod pages refuse her)",
    ),
)

# Slack channels: (id, name).
CHANNELS = (
    ("C0PRODALERTS", "prod-alerts"),
    ("C0ALERTS", "alerts"),
    ("C0RELEASES", "releases"),
    ("C0ONCALL", "oncall"),
)
# Slack user groups: (id, handle, members).
USERGROUPS = (
    ("S0ONCALL", "oncall", ("U0ALICE", "U0BOB")),
    ("S0DEPLOYERS", "deployers", ("U0ALICE", "U0BOB")),
)

# PagerDuty: the service the prod alarms page, and who is on call for it.
PAGERDUTY_SERVICE = "PCHECKOUT"
PAGERDUTY_POLICY = "PPOLICY"
PAGERDUTY_SCHEDULE = "PSCHED"
PAGERDUTY_BOT_EMAIL = "opsbot@example.com"
ROUTING_KEY_ENV = "PD_KEY_SANDBOX"  # what demo_config.yaml names

# Sample alarms the console fires: (name, what it is).
ALARMS = (
    ("prod-checkout-5xx", "5xx responses of the prod load balancer: pages on-call"),
    ("prod-checkout-latency-p99", "p99 latency of prod checkout: pages on-call"),
    ("staging-checkout-errors", "errors in staging: posted to #alerts, no page"),
)

# What opsbot "did" before the sandbox started, so the first prod alarm lists changes
# with their undo buttons (sandbox/history.py): prod ran 1.3.0, Bob deployed what it
# runs now (1.4.0) a little before, and Alice turned a flag on (it is on in the world).
HISTORY_ENV = "prod"  # claimed by the first demo alarm, prod-checkout-5xx
HISTORY_PREVIOUS_TAG = "1.3.0"
HISTORY_DEPLOYER = "U0BOB"
HISTORY_DEPLOY_MIN_AGO = 25
HISTORY_FLAG = "new_checkout_flow"
HISTORY_FLAGGER = "U0ALICE"
HISTORY_FLAG_MIN_AGO = 10
