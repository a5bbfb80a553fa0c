"""`opsbot serve` at idle holds only what serving needs: the rest loads on first use.

Each module in `NOT_AT_IDLE` costs megabytes of resident memory that most
deployments never use (docs/benchmarks.md has the figures). The test starts the
real `opsbot serve` on the embedded defaults in a subprocess, waits for
`/readyz` 200 and reads the process's own `sys.modules`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.db.migrate import script_heads
from sandbox.server import PORT_ATTEMPTS, free_port, port_taken

REPO = Path(__file__).resolve().parents[1]

# Heavy modules production does not need while idle, and where each is loaded instead.
NOT_AT_IDLE = {
    "boto3": "the first AWS call (bot/adapters/aws.py)",
    "s3transfer": "boto3, on the first AWS call",
    "botocore.session": "boto3, on the first AWS call",
    "alembic": "a pending migration (bot/db/migrate.py)",
    "mako": "alembic, for a pending migration",
    "httpx": "nothing: SNS fetches share the PagerDuty client's httpx2",
    "rich": "nothing (httpx's command line pulls it in)",
    "pygments": "nothing (httpx's command line pulls it in)",
    "moto": "tests and the sandbox only",
    "flask": "moto's server, tests and the sandbox only",
    "jinja2": "nothing in serve",
    "markdown_it": "nothing in serve",
    "matplotlib": "bench only",
    "sandbox": "`opsbot dev` only",
    "bench": "never",
    "tests": "never",
}

# Runs `opsbot serve` in this process; once ready, writes sys.modules and stops it.
PROBE = """
import json, os, signal, sys, threading, time, urllib.request
out, port = sys.argv[1], sys.argv[2]

def watch():
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.05)
    time.sleep(0.5)  # what runs just after ready (the first scheduler pass) counts too
    with open(out, "w") as f:
        json.dump(sorted(sys.modules), f)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=watch, daemon=True).start()
from bot.cli import main
sys.exit(main(["serve", "--host", "127.0.0.1", "--port", port]))
"""


def _environment(var_dir: Path) -> dict[str, str]:
    """The embedded defaults: no Slack, PagerDuty, SNS or AWS configured; SQLite in var_dir."""
    keep = ("PATH", "HOME", "LANG", "SYSTEMROOT")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update({"PYTHONPATH": str(REPO), "OPSBOT_VAR_DIR": str(var_dir)})
    return env


def _modules_at_idle(tmp_path: Path, env: dict[str, str]) -> set[str]:
    out = tmp_path / "modules.json"
    for attempt in range(1, PORT_ATTEMPTS + 1):
        done = subprocess.run(
            [sys.executable, "-c", PROBE, str(out), str(free_port())],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=90,
            check=False,
        )
        if out.exists():
            return set(json.loads(out.read_text()))
        said = (done.stdout + done.stderr).decode(errors="replace")
        if attempt == PORT_ATTEMPTS or not port_taken(said):
            pytest.fail(f"opsbot serve exited with {done.returncode} before ready:\n{said[-4000:]}")
    raise AssertionError("unreachable")


def _loaded(modules: set[str], name: str) -> bool:
    return name in modules or any(m.startswith(name + ".") for m in modules)


@pytest.mark.timeout(240)
def test_serve_at_idle_loads_none_of_the_heavy_modules_it_does_not_need(tmp_path: Path) -> None:
    env = _environment(tmp_path / "var")
    # A restart: the database is already migrated, as on every start but the first.
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "upgrade"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=90,
        check=True,
    )
    modules = _modules_at_idle(tmp_path, env)
    # The probe saw a serving process: what serving needs is there.
    assert {"bot.app", "handlers.slack_events", "sqlalchemy.orm", "uvicorn"} <= modules
    loaded = {name: why for name, why in NOT_AT_IDLE.items() if _loaded(modules, name)}
    assert loaded == {}, f"loaded at idle, should load on first use: {loaded}"


@pytest.mark.timeout(240)
def test_a_fresh_database_is_the_one_start_that_loads_alembic(tmp_path: Path) -> None:
    modules = _modules_at_idle(tmp_path, _environment(tmp_path / "var"))
    assert _loaded(modules, "alembic")  # it migrated: the probe sees what was imported
    assert not _loaded(modules, "boto3")


def test_the_heads_read_from_the_migration_files_are_alembics() -> None:
    from alembic.script import ScriptDirectory

    from bot.db.migrate import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert script_heads() == frozenset(scripts.get_heads())
