"""Prometheus Alertmanager, the standard alert router, set up like opsbot for the storm.

Debian's `prometheus-alertmanager` is installed with apt-get when it is
missing (as root, or through `sudo -n`); where that cannot be done, the
Alertmanager column is skipped and the table says why.

Settings chosen (docs/benchmarks.md explains them):
- one route per team, to a receiver with that team's Slack incoming webhook
  (the Slack emulator's `/services/...`) and PagerDuty routing key (Events API
  v2 `url` = the PagerDuty emulator over TLS, trusted through `tls_config.ca_file`);
- `group_by: [alertname]`, so each alarm is its own group, as each alarm is its
  own incident in opsbot; `group_wait: 0s` (the issue's setting);
- `group_interval` as long as opsbot's reopen window (both hold back what
  follows the first notification by the same time), `repeat_interval: 4h`
  (the default), `send_resolved: true` on both receivers (Slack's default is
  false; opsbot tells Slack about recoveries, so Alertmanager does too);
- clustering off (`--cluster.listen-address=`): one instance, no peer wait.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from bench.context import Context
from bench.procs import Service, spawn_on_free_port
from bench.sandbox import Sandbox, routing_key, team
from sandbox.environment import clean_environment

BINARIES = ("prometheus-alertmanager", "alertmanager")
PACKAGE = "prometheus-alertmanager"


def find() -> str | None:
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _apt(args: list[str]) -> subprocess.CompletedProcess[str] | str:
    if os.geteuid() == 0:
        prefix: list[str] = []
    elif shutil.which("sudo"):
        prefix = ["sudo", "-n"]
    else:
        return "not root, and no sudo to run apt-get with"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(
            [*prefix, "apt-get", *args],
            capture_output=True,
            text=True,
            timeout=900,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"apt-get failed to run: {exc}"


def ensure(*, install: bool, say: Any) -> tuple[str | None, str]:
    """The Alertmanager binary, installed if allowed and missing; else (None, why)."""
    path = find()
    if path is not None:
        return path, ""
    if not install:
        return None, f"{PACKAGE} is not installed and installing was not allowed"
    if shutil.which("apt-get") is None:
        return None, f"{PACKAGE} is not installed and there is no apt-get to install it"
    say(f"installing Debian's {PACKAGE} with apt-get")
    result = _apt(["install", "-y", "--no-install-recommends", PACKAGE])
    if not isinstance(result, str) and result.returncode != 0:
        # The package lists may be missing or stale on a fresh machine.
        update = _apt(["update", "-qq"])
        if isinstance(update, str):
            return None, update
        result = _apt(["install", "-y", "--no-install-recommends", PACKAGE])
    if isinstance(result, str):
        return None, result
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        return None, f"apt-get install {PACKAGE} failed: {' / '.join(tail)}"
    path = find()
    if path is None:
        return None, f"{PACKAGE} installed, but no alertmanager binary is on PATH"
    return path, ""


def version(path: str) -> str:
    try:
        answer = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (answer.stdout or answer.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def config(sandbox: Sandbox, *, group_interval_s: int) -> dict[str, Any]:
    ca_file = str(sandbox.ca.ca_file)
    receivers = []
    routes = []
    for k in range(1, sandbox.teams + 1):
        receivers.append(
            {
                "name": team(k),
                "slack_configs": [
                    {
                        "api_url": sandbox.webhook_url(k),
                        "channel": f"#{team(k)}",
                        "send_resolved": True,
                    }
                ],
                "pagerduty_configs": [
                    {
                        "routing_key": routing_key(k),
                        "url": sandbox.pagerduty.url + "/v2/enqueue",
                        "severity": "critical",
                        "send_resolved": True,
                        "http_config": {"tls_config": {"ca_file": ca_file}},
                    }
                ],
            }
        )
        routes.append({"matchers": [f'team="{team(k)}"'], "receiver": team(k)})
    receivers.append({"name": "default"})
    return {
        "route": {
            "receiver": "default",
            "group_by": ["alertname"],
            "group_wait": "0s",
            "group_interval": f"{group_interval_s}s",
            "repeat_interval": "4h",
            "routes": routes,
        },
        "receivers": receivers,
    }


def start(
    path: str, sandbox: Sandbox, ctx: Context, *, label: str, group_interval_s: int
) -> Service:
    directory = ctx.run_dir / label
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "alertmanager.yml"
    config_path.write_text(
        yaml.safe_dump(config(sandbox, group_interval_s=group_interval_s), sort_keys=False)
    )
    return spawn_on_free_port(
        "alertmanager",
        lambda port: [
            path,
            f"--config.file={config_path}",
            f"--storage.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=info",
        ],
        env=clean_environment({}),
        ready_path="/-/ready",
        log_path=Path(directory / "alertmanager.log"),
        settle_s=0.2 if ctx.quick else 2.0,
    )
