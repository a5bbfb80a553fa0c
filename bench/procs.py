"""Processes under test: starting them, waiting for readiness, reading their memory."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from sandbox.server import PORT_ATTEMPTS, free_port, port_taken


class StartFailed(RuntimeError):
    """A process under test exited or never became ready; the message ends with its log."""


def _status_kib(pid: int, field_name: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def rss_mb(pid: int) -> float | None:
    """Resident memory now (VmRSS), in MB (10^6 bytes, as the targets are stated)."""
    kib = _status_kib(pid, "VmRSS")
    return None if kib is None else kib * 1024 / 1e6


def peak_rss_mb(pid: int) -> float | None:
    """The most resident memory the process ever had (VmHWM, kept by the kernel), in MB."""
    kib = _status_kib(pid, "VmHWM")
    return None if kib is None else kib * 1024 / 1e6


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class RssSampler:
    """Samples a process's VmRSS every `interval_s` on a thread: (wall time, MB)."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            value = rss_mb(self.pid)
            if value is not None:
                self.samples.append((time.time(), value))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class Service:
    """A process under test, ready to take requests."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    ready_s: float  # from spawning the process to the first 200 from its readiness URL
    idle_rss_mb: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mb(self) -> float | None:
        return rss_mb(self.pid)

    def peak_rss_mb(self) -> float | None:
        return peak_rss_mb(self.pid)

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def spawn(
    name: str,
    argv: list[str],
    *,
    env: dict[str, str],
    url: str,
    ready_path: str,
    log_path: Path,
    timeout_s: float = 60.0,
    settle_s: float = 0.0,
) -> Service:
    """Start `argv` and wait until `url + ready_path` answers 200.

    `ready_s` runs from just before the process is spawned to that first 200,
    polled every 10 ms. After `settle_s` more seconds of idling, the resident
    memory is read as the idle footprint.
    """
    log_file = log_path.open("wb")
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    log_file.close()
    deadline = started + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while True:
            if process.poll() is not None:
                raise StartFailed(
                    f"{name} exited with {process.returncode} before it was ready:\n"
                    + _tail(log_path)
                )
            try:
                if client.get(url + ready_path).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() > deadline:
                process.kill()
                process.wait(5)
                raise StartFailed(
                    f"{name} was not ready after {timeout_s:.0f} s:\n" + _tail(log_path)
                )
            time.sleep(0.01)
    ready_s = time.perf_counter() - started
    service = Service(name=name, process=process, url=url, log_path=log_path, ready_s=ready_s)
    if settle_s:
        time.sleep(settle_s)
    service.idle_rss_mb = service.rss_mb()
    return service


def spawn_on_free_port(
    name: str,
    argv_for: Callable[[int], list[str]],
    *,
    env: dict[str, str],
    ready_path: str,
    log_path: Path,
    settle_s: float = 0.0,
    pick_port: Callable[[], int] = free_port,
) -> Service:
    """`spawn` a server listening on a loopback port the kernel picks (`argv_for(port)`).

    A port the kernel calls free may be taken before the child binds it (by a
    server of a test running in parallel, or as the local end of a connection):
    the child then exits saying so, and starts again on another port.
    """

    def on(port: int) -> Service:
        return spawn(
            name,
            argv_for(port),
            env=env,
            url=f"http://127.0.0.1:{port}",
            ready_path=ready_path,
            log_path=log_path,
            settle_s=settle_s,
        )

    for _ in range(PORT_ATTEMPTS - 1):
        try:
            return on(pick_port())
        except StartFailed as exc:
            if not port_taken(str(exc)):
                raise
    return on(pick_port())
