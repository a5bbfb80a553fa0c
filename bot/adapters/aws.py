"""boto3 clients, pointed at AWS_ENDPOINT_URL when it is set (moto in tests and the sandbox)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config as BotoConfig


def client(service: str, *, region: str, endpoint_url: str | None, **kwargs: Any) -> Any:
    config = BotoConfig(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5)
    return boto3.client(
        service, region_name=region, endpoint_url=endpoint_url, config=config, **kwargs
    )
