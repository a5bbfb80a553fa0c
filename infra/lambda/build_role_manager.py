#!/usr/bin/env python3
"""Build the role-manager Lambda package: build/role-manager.zip at the repository root.

    python3 infra/lambda/build_role_manager.py [--output PATH]

The zip holds role_manager.py, psycopg with its binary wheel for the Lambda runtime
(CPython 3.11 on Amazon Linux 2, x86_64: manylinux2014 wheels), pinned by the project's
requirements.lock, and Amazon RDS's CA bundle (rds-global-bundle.pem, the one the
Dockerfile pins, by the same SHA-256), so the function connects with verify-full.
Terraform deploys it (infra/modules/role-manager, variable package_path) and pins its
hash. The archive is reproducible (sorted entries, fixed timestamps), so an unchanged
source gives an unchanged hash and no redeploy.
Needs pip, access to PyPI and to truststore.pki.rds.amazonaws.com (or `--ca-bundle` with
a local copy, checked against the same pin); run it before `terraform plan`.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SOURCE = HERE / "role_manager"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
SKIP_PARTS = {"__pycache__", "bin"}
CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
# The Dockerfile's pin (a test holds the two together): a new bundle from AWS fails the
# build until the pin is updated by hand.
CA_BUNDLE_SHA256 = "e5bb2084ccf45087bda1c9bffdea0eb15ee67f0b91646106e466714f9de3c7e3"
CA_BUNDLE_NAME = "rds-global-bundle.pem"  # Terraform's PGSSLROOTCERT is /var/task/<this>


class BundleMismatch(Exception):
    pass


def ca_bundle(local: Path | None) -> bytes:
    """The RDS CA bundle, from `local` or its URL, refused unless it matches the pin."""
    if local is not None:
        content = local.read_bytes()
    else:
        with urllib.request.urlopen(CA_BUNDLE_URL, timeout=30) as answer:
            content = answer.read()
    digest = hashlib.sha256(content).hexdigest()
    if digest != CA_BUNDLE_SHA256:
        raise BundleMismatch(
            f"the RDS CA bundle's SHA-256 is {digest}, not the pinned {CA_BUNDLE_SHA256}: "
            "check the new bundle and update the pin here and in the Dockerfile"
        )
    return content


def build(output: Path, *, local_bundle: Path | None = None) -> None:
    bundle = ca_bundle(local_bundle)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "package"
        subprocess.run(  # noqa: S603 - fixed argument list, no shell
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--target",
                str(target),
                "--platform",
                "manylinux2014_x86_64",
                "--implementation",
                "cp",
                "--python-version",
                "3.11",
                "--only-binary=:all:",
                "--constraint",
                str(REPO / "requirements.lock"),
                "--requirement",
                str(SOURCE / "requirements.txt"),
            ],
            check=True,
        )
        (target / CA_BUNDLE_NAME).write_bytes(bundle)
        files = [(SOURCE / "role_manager.py", Path("role_manager.py"))]
        files += [
            (path, path.relative_to(target))
            for path in target.rglob("*")
            if path.is_file() and not SKIP_PARTS & set(path.relative_to(target).parts)
        ]
        output.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
            for path, name in sorted(files, key=lambda item: item[1].as_posix()):
                info = zipfile.ZipInfo(name.as_posix(), date_time=FIXED_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    print(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "build" / "role-manager.zip")
    parser.add_argument("--ca-bundle", type=Path, help="a local copy of the RDS CA bundle")
    args = parser.parse_args()
    try:
        build(args.output.resolve(), local_bundle=args.ca_bundle)
    except BundleMismatch as exc:
        sys.exit(f"build_role_manager: {exc}")


if __name__ == "__main__":
    main()
