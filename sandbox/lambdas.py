"""The demo role-manager Lambdas, and what answers their invocations without Docker.

The functions are created in moto like the real ones (IAM role, Python runtime,
the role manager's environment). moto runs an invoked function's code only in
Docker, which the sandbox does not have; and the real role manager
(infra/lambda/role_manager) needs the environment's PostgreSQL, which the
sandbox does not have either. So in the sandbox an invocation of a role-manager
function is answered by `RoleManagerStandIn` (through front_door.py), never by
running code: a result in the role manager's own JSON format, from a small
model of the database's roles. `check` reports without changing anything;
`manage` "repairs" and says what it changed; a second `manage` changes nothing;
an unknown action gets the role manager's own error. Everything else about
these functions (get_function, list_functions, ...) is moto's.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from dataclasses import dataclass
from typing import Any

from sandbox.world import ACCOUNT, APP, ENVIRONMENTS, REGION, Clients

ACTIONS = ("manage", "check")
EXECUTION_ROLE = "role-manager"
SOURCE = '''"""Sandbox placeholder: opsbot dev answers this function's invocations itself
(sandbox/lambdas.py); the real code is infra/lambda/role_manager/role_manager.py."""


def handler(event, context):
    raise RuntimeError("not run in the sandbox")
'''


def function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("role_manager.py", SOURCE)
    return buffer.getvalue()


@dataclass
class RoleManagerStandIn:
    """The role manager of one environment's database, as its results describe it."""

    function_name: str
    database: str
    schema: str
    migrator: str
    app: str
    provisioned: bool
    tables: int = 14

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.invocations: list[dict[str, Any]] = []

    def invoke(self, event: Any) -> dict[str, Any]:
        action = str((event or {}).get("action", "")) if isinstance(event, dict) else ""
        with self.lock:
            self.invocations.append({"action": action})
            if action not in ACTIONS:
                return self._report(
                    action, errors=[f"unknown action {action!r}: use one of {', '.join(ACTIONS)}"]
                )
            if action == "check":
                errors = [f"needs repair: {step}" for step in self._repairs()]
                return self._report(action, errors=errors, describe=True)
            changed = self._repairs()
            self.provisioned = True
            return self._report(action, changed=changed, describe=True)

    def _repairs(self) -> list[str]:
        if self.provisioned:
            return []
        schema, migrator, app = self.schema, self.migrator, self.app
        steps = []
        for role in (migrator, app):
            steps += [
                f"create role {role}",
                f"set search_path of {role} to {schema}",
                f"grant rds_iam to {role} (IAM authentication)",
                f"grant CONNECT on database {self.database} to {role}",
            ]
        steps += [
            f"grant {migrator} to the master user postgres_admin (to hand it the schema)",
            f"create schema {schema} owned by {migrator}",
            f"grant USAGE on schema {schema} to {app}",
            f"grant SELECT, INSERT, UPDATE, DELETE on tables {migrator} creates in {schema} "
            f"to {app} (default privileges)",
            f"grant USAGE, SELECT, UPDATE on sequences {migrator} creates in {schema} "
            f"to {app} (default privileges)",
            "revoke CREATE on schema public from PUBLIC",
        ]
        return steps

    def _roles(self) -> list[dict[str, Any]]:
        if not self.provisioned:
            return [
                {"name": role, "exists": False, "attributes": [], "grants": [], "member_of": []}
                for role in (self.migrator, self.app)
            ]
        attributes = [
            "LOGIN",
            "INHERIT",
            "NOSUPERUSER",
            "NOCREATEDB",
            "NOCREATEROLE",
            "NOREPLICATION",
            "NOBYPASSRLS",
            f"SET search_path={self.schema}",
        ]
        return [
            {
                "name": self.migrator,
                "exists": True,
                "attributes": attributes,
                "grants": [
                    f"CONNECT on database {self.database}",
                    f"owner of schema {self.schema}",
                    f"USAGE, CREATE on schema {self.schema}",
                ],
                "member_of": ["rds_iam"],
            },
            {
                "name": self.app,
                "exists": True,
                "attributes": attributes,
                "grants": [
                    f"CONNECT on database {self.database}",
                    f"USAGE on schema {self.schema}",
                    f"DELETE, INSERT, SELECT, UPDATE on tables {self.migrator} creates in "
                    f"{self.schema} (default)",
                    f"SELECT, UPDATE, USAGE on sequences {self.migrator} creates in "
                    f"{self.schema} (default)",
                ],
                "member_of": ["rds_iam"],
            },
        ]

    def _report(
        self,
        action: str,
        *,
        changed: list[str] | None = None,
        errors: list[str] | None = None,
        describe: bool = False,
    ) -> dict[str, Any]:
        report: dict[str, Any] = {
            "action": action,
            "ok": not errors,
            "changed": changed or [],
            "roles": [],
            "schema": {},
            "tables_reachable": False,
            "tables": {},
            "warnings": [],
            "errors": errors or [],
        }
        if describe:
            report["roles"] = self._roles()
            report["schema"] = {
                "name": self.schema,
                "exists": self.provisioned,
                "owner": self.migrator if self.provisioned else None,
            }
            report["tables_reachable"] = self.provisioned
            report["tables"] = {"count": self.tables if self.provisioned else 0, "unreachable": []}
        return report


def stand_ins() -> dict[str, RoleManagerStandIn]:
    """One per demo environment, by function name."""
    return {
        env.role_manager: RoleManagerStandIn(
            function_name=env.role_manager,
            database=f"{APP}_{env.name}",
            schema=APP,
            migrator=f"{APP}_migrator",
            app=f"{APP}_app",
            provisioned=env.roles_provisioned,
        )
        for env in ENVIRONMENTS
    }


# Who may assume a function's execution role: Lambda.
LAMBDA_TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def seed(clients: Clients) -> None:
    iam = clients("iam")
    role = iam.create_role(RoleName=EXECUTION_ROLE, AssumeRolePolicyDocument=LAMBDA_TRUST_POLICY)
    aws_lambda = clients("lambda")
    for env in ENVIRONMENTS:
        aws_lambda.create_function(
            FunctionName=env.role_manager,
            Runtime="python3.12",
            Role=role["Role"]["Arn"],
            Handler="role_manager.handler",
            Code={"ZipFile": function_zip()},
            Description=f"Database roles of {APP} {env.name}",
            Timeout=60,
            MemorySize=256,
            Environment={
                "Variables": {
                    "DB_HOST": f"{APP}-{env.name}.cluster-c0sandbox.{REGION}.rds.amazonaws.com",
                    "DB_NAME": f"{APP}_{env.name}",
                    "MASTER_SECRET_ARN": (
                        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!cluster-{env.name}"
                    ),
                    "SCHEMA_NAME": APP,
                    "MIGRATOR_ROLE": f"{APP}_migrator",
                    "APP_ROLE": f"{APP}_app",
                }
            },
        )
