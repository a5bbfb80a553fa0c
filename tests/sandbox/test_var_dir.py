"""`opsbot dev --var-dir DIR` empties DIR at each start: only a directory that is new,
empty, or marked by an earlier start; anything else (the checkout, a home folder) is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.run import VAR_DIR_MARKER, VarDirRefused, renew_var_dir

ROOT = Path(__file__).resolve().parents[2]


def test_dev_refuses_a_var_dir_holding_a_stray_file_and_leaves_it(tmp_path: Path) -> None:
    stray = tmp_path / "notes.txt"
    stray.write_text("mine", encoding="utf-8")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "OPSBOT_", "SLACK_", "PAGERDUTY_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "dev", "--port", "0", "--var-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # a sandbox that started serves until stopped: this fails instead
        check=False,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith(f"opsbot dev: --var-dir {tmp_path} holds files the sandbox")
    assert "nothing was changed" in result.stderr
    assert stray.read_text(encoding="utf-8") == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_only_a_new_an_empty_or_a_marked_directory_is_emptied(tmp_path: Path) -> None:
    new = tmp_path / "var" / "sandbox"
    renew_var_dir(new)
    assert [p.name for p in new.iterdir()] == [VAR_DIR_MARKER]

    # What an earlier start left (its database, its test CA) goes at the next.
    (new / "opsbot.db").write_bytes(b"SQLite")
    (new / "tls").mkdir()
    (new / "tls" / "ca.pem").write_text("CA", encoding="utf-8")
    renew_var_dir(new)
    assert [p.name for p in new.iterdir()] == [VAR_DIR_MARKER]

    empty = tmp_path / "empty"
    empty.mkdir()
    renew_var_dir(empty)
    assert [p.name for p in empty.iterdir()] == [VAR_DIR_MARKER]


def test_a_directory_the_sandbox_did_not_mark_or_a_file_is_refused_untouched(
    tmp_path: Path,
) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "bot").mkdir(parents=True)
    (checkout / "bot" / "cli.py").write_text("code", encoding="utf-8")
    (checkout / "opsbot.db").write_bytes(b"SQLite")  # even what looks like a sandbox's
    with pytest.raises(VarDirRefused, match="holds files the sandbox did not write"):
        renew_var_dir(checkout)
    assert (checkout / "bot" / "cli.py").read_text(encoding="utf-8") == "code"
    assert not (checkout / VAR_DIR_MARKER).exists()

    a_file = tmp_path / "file"
    a_file.write_text("data", encoding="utf-8")
    with pytest.raises(VarDirRefused, match="is not a directory"):
        renew_var_dir(a_file)
    assert a_file.read_text(encoding="utf-8") == "data"


def test_an_earlier_sandbox_from_before_the_marker_is_emptied_only_at_the_default_path(
    tmp_path: Path,
) -> None:
    # `make run` on a checkout whose var/sandbox a start before the marker wrote.
    earlier = tmp_path / "var" / "sandbox"
    (earlier / "tls").mkdir(parents=True)
    (earlier / "tls" / "ca.pem").write_text("CA", encoding="utf-8")
    for name in ("opsbot.db", "opsbot.db-wal", "opsbot.db-shm"):
        (earlier / name).write_bytes(b"SQLite")
    renew_var_dir(earlier, default=True)
    assert [p.name for p in earlier.iterdir()] == [VAR_DIR_MARKER]

    # `--var-dir var`: `make serve`'s database looks the same, and is never touched.
    serves = tmp_path / "var"
    (serves / "opsbot.db").write_bytes(b"SQLite")
    for child in earlier.iterdir():
        child.unlink()
    earlier.rmdir()
    with pytest.raises(VarDirRefused, match="holds files the sandbox did not write"):
        renew_var_dir(serves)
    assert (serves / "opsbot.db").read_bytes() == b"SQLite"
