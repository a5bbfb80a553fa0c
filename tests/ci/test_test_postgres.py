"""`.ci/test-postgres`: a private cluster made, started, reused and stopped for real.

Each test gets a cluster directory of its own (OPSBOT_PG_DIR), apart from the one the
suite itself runs on. As root the cluster runs as another user (PostgreSQL refuses root),
so that directory's parent is made searchable by everyone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.ci.conftest import Run

IS_ROOT = os.geteuid() == 0


@pytest.fixture
def cluster_dir(ci_run: Run, ci_env: dict[str, str]) -> Iterator[Path]:
    """A fresh directory for a cluster (short enough for a unix socket); the cluster in it
    is stopped and the directory removed afterwards."""
    parent = Path(tempfile.mkdtemp(prefix="opsbot-pg-test-"))
    parent.chmod(0o711)
    pgdir = parent / "pg"
    try:
        yield pgdir
    finally:
        ci_run("test-postgres", "stop", env=ci_env | {"OPSBOT_PG_DIR": str(pgdir)})
        shutil.rmtree(parent, ignore_errors=True)


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_a_private_cluster_is_made_reused_and_stopped(
    ci_run: Run, ci_env: dict[str, str], cluster_dir: Path
) -> None:
    env = ci_env | {"OPSBOT_PG_DIR": str(cluster_dir)}

    first = ci_run("test-postgres", env=env)
    assert first.returncode == 0, first.stderr
    url = first.stdout.strip()
    assert url.startswith("postgresql+psycopg://opsbot_test:")
    assert "@127.0.0.1:" in url
    with psycopg.connect(libpq(url)) as connection:
        row = connection.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, pg_encoding_to_char(d.encoding)"
            " FROM pg_roles, pg_database d WHERE rolname = current_user AND d.datname = 'postgres'"
        ).fetchone()
    assert row == (False, True, True, "UTF8")
    assert (cluster_dir.stat().st_mode & 0o777) == 0o700
    assert ci_run("test-postgres", "status", env=env).stdout.startswith("running:")

    again = ci_run("test-postgres", env=env)
    assert (again.returncode, again.stdout.strip(), again.stderr) == (0, url, "")

    stopped = ci_run("test-postgres", "stop", env=env)
    assert stopped.returncode == 0
    assert ci_run("test-postgres", "status", env=env).stdout.startswith("stopped:")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(libpq(url), connect_timeout=5).close()

    restarted = ci_run("test-postgres", env=env)
    assert restarted.returncode == 0, restarted.stderr
    assert "initdb" not in restarted.stderr
    with psycopg.connect(libpq(restarted.stdout.strip())) as connection:
        assert connection.execute("SELECT current_user").fetchone() == ("opsbot_test",)


def test_the_superuser_cannot_log_in_over_tcp(
    ci_run: Run, ci_env: dict[str, str], cluster_dir: Path
) -> None:
    result = ci_run("test-postgres", env=ci_env | {"OPSBOT_PG_DIR": str(cluster_dir)})
    assert result.returncode == 0, result.stderr
    port = result.stdout.strip().rsplit(":", 1)[1].split("/")[0]

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            f"postgresql://postgres:guess@127.0.0.1:{port}/postgres", connect_timeout=5
        ).close()


def test_test_database_url_wins_and_nothing_is_started(
    ci_run: Run, ci_env: dict[str, str], tmp_path: Path
) -> None:
    given = "postgresql+psycopg://someone:secret@db.example:5432/postgres"
    env = ci_env | {"TEST_DATABASE_URL": given, "OPSBOT_PG_DIR": str(tmp_path / "pg")}

    result = ci_run("test-postgres", env=env)

    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, given, "")
    assert not (tmp_path / "pg").exists()


def test_pg_bindir_without_the_programs_is_one_line(
    ci_run: Run, ci_env: dict[str, str], tmp_path: Path
) -> None:
    env = ci_env | {"PG_BINDIR": str(tmp_path), "OPSBOT_PG_DIR": str(tmp_path / "pg")}

    result = ci_run("test-postgres", env=env)

    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(
        f"test-postgres: PG_BINDIR={tmp_path} has no initdb, pg_ctl and postgres"
    )
    assert not (tmp_path / "pg").exists()


@pytest.mark.skipif(not IS_ROOT, reason="only root runs the cluster as another user")
def test_as_root_a_directory_the_cluster_user_cannot_reach_is_refused(
    ci_run: Run, ci_env: dict[str, str]
) -> None:
    private = Path(tempfile.mkdtemp(prefix="opsbot-pg-private-"))  # 0700, root's
    try:
        result = ci_run("test-postgres", env=ci_env | {"OPSBOT_PG_DIR": str(private / "pg")})

        assert result.returncode == 1
        [line] = result.stderr.splitlines()
        assert "cannot be reached by" in line
        assert "set OPSBOT_PG_DIR" in line
        assert not (private / "pg" / "data").exists()
    finally:
        shutil.rmtree(private, ignore_errors=True)
