"""Every domain's tables, imported so that `Base.metadata` is complete (for Alembic and tests).

It sits above the domains (as the migrations environment does), so that `bot.db`
imports none of them.
"""

from __future__ import annotations

from bot.alarms import models as alarms_models
from bot.approvals import models as approvals_models
from bot.audit import models as audit_models
from bot.changes import models as changes_models
from bot.db.base import Base
from bot.deploys import models as deploys_models
from bot.home import models as home_models
from bot.inbound import models as inbound_models
from bot.incidents import models as incidents_models
from bot.maintenance import models as maintenance_models
from bot.ops import models as ops_models
from bot.outbox import models as outbox_models
from bot.people import models as people_models
from bot.sns import models as sns_models

MODEL_MODULES = (
    alarms_models,
    approvals_models,
    audit_models,
    changes_models,
    deploys_models,
    home_models,
    inbound_models,
    incidents_models,
    maintenance_models,
    ops_models,
    outbox_models,
    people_models,
    sns_models,
)

metadata = Base.metadata
