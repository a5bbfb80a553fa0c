"""`opsbot dev` as a subprocess on a free port, for the console's tests and screenshot."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sandbox.server import PORT_ATTEMPTS, free_port, port_taken


@dataclass
class DevServer:
    process: subprocess.Popen[str]
    url: str
    log: Path
    settings: dict[str, str] = field(default_factory=dict)  # as printed at start

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, json=json, timeout=60, **kwargs)

    def state(self) -> dict[str, Any]:
        answer = self.get("/console/api/state")
        answer.raise_for_status()
        data: dict[str, Any] = answer.json()
        return data

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class PortTaken(AssertionError):
    """`opsbot dev` exited because another process bound one of its ports first."""


def start_dev_server(
    directory: Path, *, rollout_s: float = 3.0, timeout_s: float = 90
) -> DevServer:
    """Start `opsbot dev` with its var dir in `directory`; wait until it serves.

    A port found free may be taken before the server binds it (by a parallel
    test): it is then started again on another.
    """
    for _ in range(PORT_ATTEMPTS - 1):
        try:
            return _start(directory, rollout_s=rollout_s, timeout_s=timeout_s)
        except PortTaken:
            pass
    return _start(directory, rollout_s=rollout_s, timeout_s=timeout_s)


def _start(directory: Path, *, rollout_s: float, timeout_s: float) -> DevServer:
    port = free_port()
    log = directory / "opsbot-dev.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "OPSBOT_", "SLACK_", "PAGERDUTY_"))
    }
    env.pop("PORT", None)
    env.pop("HOST", None)
    with log.open("w") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bot.cli",
                "dev",
                "--port",
                str(port),
                "--var-dir",
                str(directory / "var"),
                "--rollout-s",
                str(rollout_s),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=directory,
        )
    server = DevServer(process=process, url=f"http://127.0.0.1:{port}", log=log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = server.output()
            failed = PortTaken if port_taken(said) else AssertionError
            raise failed(f"opsbot dev exited with {process.returncode}:\n{said}")
        try:
            if server.get("/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    else:
        server.stop()
        raise AssertionError(f"opsbot dev did not start in {timeout_s} s:\n{server.output()}")
    for line in server.output().splitlines():
        found = re.match(r"^  ([A-Z][A-Z0-9_]+)\s{2,}(.*)$", line)
        if found:
            server.settings[found.group(1)] = found.group(2).strip()
    return server
