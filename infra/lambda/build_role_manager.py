#!/usr/bin/env python3
"""Build the role-manager Lambda package: build/role-manager.zip at the repository root.

    python3 infra/lambda/build_role_manager.py [--output PATH]

The zip holds role_manager.py and psycopg with its binary wheel for the Lambda runtime
(CPython 3.11 on Amazon Linux 2, x86_64: manylinux2014 wheels), pinned by the project's
requirements.lock. Terraform deploys it (infra/modules/role-manager, variable
package_path) and pins its hash. The archive is reproducible (sorted entries, fixed
timestamps), so an unchanged source gives an unchanged hash and no redeploy.
Needs pip and access to PyPI; run it before `terraform plan`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SOURCE = HERE / "role_manager"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
SKIP_PARTS = {"__pycache__", "bin"}


def build(output: Path) -> None:
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
    build(parser.parse_args().output.resolve())


if __name__ == "__main__":
    main()
