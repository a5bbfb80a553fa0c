"""The demo SSM flags of checkout/staging: /service/<service_name>/feature-flag/<FLAG>.

The convention of infra/modules/feature-flags: one String parameter per flag,
"true" or "false", injected into the ECS task as FF_<FLAG>. moto covers SSM fully.
"""

from __future__ import annotations

from sandbox.world import Clients

SERVICE_NAME = "checkout-staging"
FLAGS = {"NEW_CHECKOUT_FLOW": "true", "APPLE_PAY": "true", "MAINTENANCE_BANNER": "false"}


def parameter_name(flag: str) -> str:
    return f"/service/{SERVICE_NAME}/feature-flag/{flag}"


def seed(clients: Clients) -> None:
    ssm = clients("ssm")
    for flag, value in FLAGS.items():
        ssm.put_parameter(
            Name=parameter_name(flag),
            Value=value,
            Type="String",
            Description=f"Feature flag {flag} of {SERVICE_NAME} (FF_{flag} in the task)",
        )
