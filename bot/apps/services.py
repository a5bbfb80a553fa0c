"""What a change to an app environment works with: deploys, flags, database roles, approvals.

`Services` is what their flows and jobs take. The runtime that serves Slack is
one (structurally); scheduled jobs get an `AppServices` built by the
composition root, so nothing below it imports the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from bot.adapters.aws import AwsClients
from bot.apps.access import Access
from bot.clock import Clock
from bot.config import Config
from bot.rights.service import Rights
from bot.scheduler.scheduler import JobScheduler


class Services(Protocol):
    @property
    def config(self) -> Config: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def aws(self) -> AwsClients: ...  # boto3 clients by service name, built on first use

    @property
    def scheduler(self) -> JobScheduler: ...

    @property
    def access(self) -> Access: ...  # deploy rights: an app environment's deployers

    @property
    def rights(self) -> Rights: ...  # incident rights and administration (the CLI's user)


@dataclass(frozen=True)
class AppServices:
    """The `Services` the composition root hands to scheduled jobs."""

    config: Config
    clock: Clock
    sessions: sessionmaker[Session]
    aws: AwsClients
    scheduler: JobScheduler
    access: Access
    rights: Rights
