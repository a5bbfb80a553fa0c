"""The role manager connects with verify-full against the RDS CA bundle its package carries.

Terraform sets DB_SSLMODE=verify-full and PGSSLROOTCERT to the bundle inside the package;
the build script puts that bundle there, checked against the Dockerfile's pin.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import role_manager  # from infra/lambda/role_manager, put on sys.path by conftest.py

REPO = Path(__file__).resolve().parents[2]
BASE = {"DB_HOST": "db.example", "DB_NAME": "app", "MASTER_SECRET_ARN": "arn:secret"}


def test_verify_full_is_the_default_and_needs_the_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "rds-global-bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")

    config = role_manager.Config.from_env({**BASE, "PGSSLROOTCERT": str(bundle)})
    assert config.sslmode == "verify-full"

    with pytest.raises(role_manager.ConfigError, match="PGSSLROOTCERT"):
        role_manager.Config.from_env(BASE)
    with pytest.raises(role_manager.ConfigError, match="PGSSLROOTCERT"):
        role_manager.Config.from_env({**BASE, "PGSSLROOTCERT": str(tmp_path / "missing.pem")})


def test_an_unknown_sslmode_is_refused() -> None:
    with pytest.raises(role_manager.ConfigError, match="DB_SSLMODE"):
        role_manager.Config.from_env({**BASE, "DB_SSLMODE": "sometimes"})


def test_the_package_pins_the_same_bundle_as_the_image() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    build = (REPO / "infra" / "lambda" / "build_role_manager.py").read_text()
    [image_pin] = re.findall(r"--checksum=sha256:([0-9a-f]{64})", dockerfile)
    [package_pin] = re.findall(r'CA_BUNDLE_SHA256 = "([0-9a-f]{64})"', build)
    assert image_pin == package_pin
    lambda_tf = (REPO / "infra" / "modules" / "role-manager" / "lambda.tf").read_text()
    assert 'ca_bundle_name = "rds-global-bundle.pem"' in lambda_tf
    assert 'CA_BUNDLE_NAME = "rds-global-bundle.pem"' in build


def test_a_bundle_that_is_not_the_pinned_one_builds_nothing(tmp_path: Path) -> None:
    forged = tmp_path / "bundle.pem"
    forged.write_text("-----BEGIN CERTIFICATE-----\nnot Amazon's\n")
    output = tmp_path / "role-manager.zip"

    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "infra" / "lambda" / "build_role_manager.py"),
            "--output",
            str(output),
            "--ca-bundle",
            str(forged),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "not the pinned" in result.stderr
    assert not output.exists()
