"""A deployment's life: started, watched, finished, and what each step sends out.

- `start` takes the deploy lock and records the deployment (one transaction),
  schedules its watch, then registers the new task definition revision and
  updates the service, and records that (another transaction). A process
  that dies in between leaves a "starting" deployment that `reconcile`
  settles from the service's real state, once the start's claim on it
  (`StartClaim`, held while it calls AWS) has lapsed.
- A start that takes over the active deployment (a rollback of it, or a forced
  deploy over a stuck one) takes its deploy lock over, and nothing else: that
  deployment keeps its status and its watch until the new service update lands
  (`rolling_out`), and is superseded then. A start that ends before that hands
  the lock back to it (`finish`), exactly as it held it.
- `observe` is one look at the rollout (the watch job calls it, so does
  `opsbot deploy --wait`): progress in the thread, then completed, failed,
  stuck or superseded. Two observers never both apply the same look: a
  deployment's `observations` counter is checked under the row lock.
- `recover` makes a deploy lock's holder tell the truth when someone else
  wants the environment.

Every message goes through the outbox, in the transaction of the change; every
outcome is audited, and counted in `opsbot_deploys_total` once it commits.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.adapters import ecs
from bot.adapters.aws import longest_call_s
from bot.approvals.render import actor_text
from bot.approvals.service import is_slack_user
from bot.apps.errors import RightUnverifiable
from bot.apps.registry import Target, get_target_or_raise
from bot.audit import service as audit
from bot.db import committed
from bot.deploys import locks, render, service
from bot.deploys import rollout as verdicts
from bot.deploys.errors import DeployError, DeployFailed, DeployRefused, aws_call, failure_code
from bot.deploys.models import (
    COMPLETED,
    DEPLOY,
    FAILED,
    FLAG_ROLL,
    LOCK_DEPLOY,
    ROLLBACK,
    ROLLING_OUT,
    STARTING,
    STUCK,
    SUPERSEDED,
    Deployment,
)
from bot.deploys.policy import short_task_definition
from bot.deploys.rollout import Seen, Verdict, assess, counts_text, ours
from bot.incidents import flows as incident_flows
from bot.incidents import service as incidents
from bot.incidents.render import duration
from bot.outbox import service as outbox
from bot.slack_text import code

if TYPE_CHECKING:
    from bot.adapters.ecs import Rollout, ServiceState
    from bot.apps.services import Services
    from bot.deploys.plans import Plan, Request
    from bot.observability.metrics import Metrics

log = logging.getLogger(__name__)

WATCH_JOB = "deploys.watch"
# How long a start's claim lasts unrenewed: far longer than a renewal takes, or than the
# clocks of two instances disagree; short enough that a start that died is soon settled.
START_CLAIM = timedelta(minutes=2)
RENEW_EVERY_S = 30.0
# In a "starting" deployment's `observed`: the AWS error code of a service update whose
# answer was lost, for `reconcile` to say why it settles it.
UNANSWERED = "unanswered"
# In a rolling-out deployment's `observed`: since when, and why, the watch cannot read ECS.
UNREADABLE_SINCE = "unreadable_since"
UNSETTLED_SINCE = "unsettled_since"  # a starting deployment's first look that failed
UNREADABLE_CODE = "unreadable_code"
# In a "starting" deployment's `observed`: the deployment it takes over once its service
# update lands, and how that one held the deploy lock (to hand it back if it never lands).
TAKES_OVER = "takes_over"


class Reconciler(Protocol):
    def __call__(self, services: Services, *, deployment_id: int) -> str: ...


# Kinds of deployment that settle a crashed start their own way (restarts.py: flag
# rolls, whose revision is the one already running, so that `reconcile`'s test
# would find every one of them "updated").
RECONCILERS: dict[str, Reconciler] = {}


def register_reconciler(kind: str, reconciler: Reconciler) -> None:
    """Settle "starting" deployments of `kind` with `reconciler` (at import, like jobs)."""
    RECONCILERS[kind] = reconciler


# -- outcomes, counted once they commit ----------------------------------------------------

_COUNTED = "deploys.counted"
# The `kind` label of opsbot_deploys_total for each kind of deployment.
METRIC_KINDS = {DEPLOY: "deploy", ROLLBACK: "rollback", FLAG_ROLL: "flag_roll"}


def count(db_session: Session, *, kind: str, outcome: str) -> None:
    """Count `outcome` of a deployment of `kind` in opsbot_deploys_total once this commits."""
    committed.note(db_session, _COUNTED, (METRIC_KINDS.get(kind, kind), outcome))


def count_outcomes_after_commit(sessions: sessionmaker[Session], metrics: Metrics) -> None:
    """Count deployments' outcomes (`opsbot_deploys_total`) once their audit lines commit."""
    committed.on_commit(sessions, _COUNTED, lambda item: metrics.deploy(*item))


def announce(db_session: Session, *, deployment: Deployment, now: datetime) -> None:
    """Post or update the deployment's one message in its channel."""
    if deployment.channel:
        outbox.post_or_update(
            db_session,
            key=deployment.message_key,
            channel=deployment.channel,
            message=render.announcement(deployment),
            now=now,
        )


def tell_actor(
    db_session: Session,
    *,
    deployment: Deployment,
    key: str,
    message: dict[str, Any],
    now: datetime,
    even_with_channel: bool = False,
) -> None:
    """Send `message` to the deployment's actor directly, when it has no channel to be read in.

    A deploy asked through the CLI of an environment without a release channel has
    none: how it ends is told to the Slack user the CLI acts as. `key` names the
    message among the deployment's (its end's status, say): a second message under the
    same key updates the first. `even_with_channel`: told to the actor in any case.
    """
    if (deployment.channel and not even_with_channel) or not is_slack_user(deployment.actor):
        return
    outbox.post_or_update(
        db_session,
        key=f"{deployment.message_key}:dm:{key}",
        channel=deployment.actor,
        message=message,
        now=now,
    )


def thread_reply(db_session: Session, *, deployment: Deployment, text: str, now: datetime) -> None:
    """Say `text` (mrkdwn opsbot composed) in the deployment's thread."""
    if deployment.channel:
        outbox.reply_in_thread(
            db_session,
            key=deployment.message_key,
            channel=deployment.channel,
            fold_key=None,
            item={"text": text},
            render=render.text_reply,
            now=now,
        )


def _progress(
    db_session: Session, *, deployment: Deployment, item: dict[str, Any], now: datetime
) -> None:
    if deployment.channel:
        outbox.reply_in_thread(
            db_session,
            key=deployment.message_key,
            channel=deployment.channel,
            fold_key=f"{deployment.message_key}:progress",
            item=item,
            render=render.progress_reply,
            now=now,
        )


def record(
    db_session: Session,
    *,
    deployment: Deployment,
    action: str,
    outcome: str,
    now: datetime,
    actor: str | None = None,
    **detail: Any,
) -> None:
    """Audit a step of the deployment, with what it rolls out."""
    base = {
        "deployment": deployment.id,
        "tag": deployment.tag,
        "image": deployment.image,
        "task_definition": deployment.task_definition,
        "previous_task_definition": deployment.previous_task_definition,
    }
    audit.record(
        db_session,
        at=now,
        actor=actor or deployment.actor,
        action=action,
        target=deployment.audit_target,
        outcome=outcome,
        detail={**{k: v for k, v in base.items() if v is not None}, **detail},
    )


def request_refused(services: Services, request: Request, error: Exception) -> None:
    """Audit, count and log a request that did not start: refused, or failed before it could.

    It failed when AWS did (DeployFailed), or when Slack could not confirm a right
    (RightUnverifiable: nobody was found without it), and was refused otherwise
    (a check, a right).
    """
    unverifiable = error.reason if isinstance(error, RightUnverifiable) else None
    failed = isinstance(error, DeployFailed)
    outcome = "failed" if failed or unverifiable is not None else "refused"
    aws_error = failure_code(error) if failed else None
    detail = {**_request_detail(request), "reason": str(error)}
    if aws_error is not None:
        detail["aws_error"] = aws_error
    if unverifiable is not None:
        detail["unverifiable"] = unverifiable
    with services.sessions() as db_session:
        audit.record(
            db_session,
            at=services.clock.now(),
            actor=request.actor,
            action=f"{request.kind}.request",
            target=request.audit_target,
            outcome=outcome,
            detail=detail,
        )
        count(db_session, kind=request.kind, outcome=outcome)
        db_session.commit()
    what = request.tag or request.digest or f"#{request.rollback_of}"
    extra = {"app": request.app, "env": request.env, "slack_user": request.actor}
    if failed:
        log.warning(
            "%s of %s to %s by %s failed before it started (AWS error %s): %s",
            request.kind,
            what,
            request.label,
            request.actor,
            aws_error,
            str(error),
            extra={**extra, "aws_error": aws_error},
        )
    elif unverifiable is not None:
        log.warning(
            "%s of %s to %s by %s failed: opsbot could not check the requester's right: %s",
            request.kind,
            what,
            request.label,
            request.actor,
            unverifiable,
            extra=extra,
        )
    else:
        log.info(
            "%s of %s to %s by %s refused: %s",
            request.kind,
            what,
            request.label,
            request.actor,
            str(error),
            extra=extra,
        )


def _request_detail(request: Request) -> dict[str, Any]:
    detail: dict[str, Any] = {"tag": request.tag, "digest": request.digest}
    if request.rollback_of is not None:
        detail["rollback_of"] = request.rollback_of
    if request.force_reason:
        detail["force_reason"] = request.force_reason
    if request.undoes is not None:
        detail["undoes"] = request.undoes
        detail["undoes_task_definition"] = request.undoes_task_definition
    if request.cli_identity:
        detail["cli"] = request.cli_identity
    return {k: v for k, v in detail.items() if v is not None}


def finish(
    db_session: Session,
    *,
    deployment: Deployment,
    status: str,
    outcome: str,
    now: datetime,
    actor: str | None = None,
    aws_error: str | None = None,
    **detail: Any,
) -> None:
    """End a deployment: its status, the lock, the audit entry, its messages.

    `actor` is who ended it, when someone other than its deployer did (a rollback
    of it, a forced takeover); `aws_error` the AWS error code it failed on, if one
    did; `detail` more for the audit entry. A deployment that ends before its
    service update landed, while it was to take another one over, hands the lock
    back to that one (see `_hand_back`).
    """
    kept = _hand_back(db_session, deployment=deployment)
    if kept is None:
        service.release_deploy_lock(db_session, deployment=deployment)
    else:
        outcome = f"{outcome}\n{render.kept_text(kept)}"
        detail = {**detail, "lock_back_to": kept.id}
    deployment.status = status
    deployment.outcome = outcome
    deployment.finished_at = now
    extra: dict[str, Any] = {**detail, "aws_error": aws_error} if aws_error else dict(detail)
    record(
        db_session,
        deployment=deployment,
        action=f"{deployment.kind}.finish",
        outcome={COMPLETED: "ok", SUPERSEDED: "superseded"}.get(status, "failed"),
        now=now,
        actor=actor,
        status=status,
        summary=outcome,
        **extra,
    )
    count(db_session, kind=deployment.kind, outcome=status)
    if status == FAILED:
        log.warning(
            "deployment %s: %s of %s to %s by %s failed (AWS error %s): %s",
            deployment.id,
            deployment.kind,
            deployment.tag,
            deployment.label,
            deployment.actor,
            aws_error or "-",
            outcome,
            extra=_log_extra(deployment, aws_error=aws_error),
        )
    announce(db_session, deployment=deployment, now=now)
    thread_reply(
        db_session, deployment=deployment, text=f"{render.headline(deployment)}\n{outcome}", now=now
    )
    tell_actor(
        db_session,
        deployment=deployment,
        key=status,
        message=render.direct_notice(deployment, outcome),
        now=now,
    )
    refresh_incidents(db_session, app=deployment.app, env=deployment.env, now=now)


def _log_extra(deployment: Deployment, **more: Any) -> dict[str, Any]:
    """The ids a log line about a deployment carries."""
    return {
        "deployment": deployment.id,
        "app": deployment.app,
        "env": deployment.env,
        "slack_user": deployment.actor,
        **{k: v for k, v in more.items() if v is not None},
    }


def _hand_back(db_session: Session, *, deployment: Deployment) -> Deployment | None:
    """Give the deploy lock back to the deployment `deployment` was to take over; that one.

    Only while `deployment` holds the lock it took over and that deployment still
    runs: its service update never landed, so nothing took it over, and it holds the
    lock again exactly as it did (holder, since when). Its status and watch were
    never touched. None when there is nothing to hand back.
    """
    observed = dict(deployment.observed or {})
    taken = observed.pop(TAKES_OVER, None)
    if not isinstance(taken, dict):
        return None
    deployment.observed = observed
    old = service.get(db_session, deployment_id=int(taken["deployment"]), lock=True)
    held = service.get_lock(
        db_session, app=deployment.app, env=deployment.env, kind=LOCK_DEPLOY, lock=True
    )
    if old is None or not old.is_active or held is None or held.deployment_id != deployment.id:
        return None
    held.deployment_id = old.id
    held.holder = str(taken["holder"])
    held.acquired_at = datetime.fromisoformat(str(taken["acquired_at"]))
    db_session.flush()
    log.warning(
        "deployment %s: %s of %s to %s by %s ended before its service update landed: "
        "deployment %s (%s) keeps the deploy lock, not taken over",
        deployment.id,
        deployment.kind,
        deployment.tag,
        deployment.label,
        deployment.actor,
        old.id,
        old.status,
        extra=_log_extra(deployment, taken_over=old.id),
    )
    return old


def refresh_incidents(db_session: Session, *, app: str, env: str, now: datetime) -> None:
    """Re-render the messages of the open incidents of `app/env`.

    A change of theirs just ended (a rollback clicked on one of them, say): the
    status their "Changes before this alarm" shows moves with it.
    """
    for incident in incidents.open_for_app(db_session, app=app, env=env):
        incident_flows.sync_message(db_session, incident=incident, now=now)


def new_watch_token(deployment_id: int) -> str:
    # A new id every time: APScheduler removes a finished date job by its id.
    return f"deploy-watch-{deployment_id}-{uuid.uuid4().hex[:10]}"


def start(
    services: Services,
    checked: Plan,
    *,
    approved_by: list[str],
    on_recorded: Callable[[Session, int], None] | None = None,
) -> Deployment:
    """Take the lock, record the deployment, update the service, watch it.

    `on_recorded(db_session, deployment_id)` runs in the transaction that records the
    deployment: a request's run records there which deployment is its own, so that
    link holds whenever the deployment exists, whatever stops the run afterwards.

    While it calls AWS the start claims the deployment (`StartClaim`, renewed for no
    longer than boto3's retries and timeouts let its calls last), and nothing settles
    a "starting" deployment from ECS before that claim has lapsed. Right before
    UpdateService it checks under the row lock, renewing the claim, that the
    deployment is still "starting" (a start given up meanwhile never updates the
    service), and an update whose answer is lost leaves it "starting" for its watch
    to settle from ECS. An update that lands all the same after the deployment was
    given up (its process stalled past its claim) is taken back when the environment
    is free, and said in the channel when it is not.
    """
    request = checked.request
    settings = checked.target.settings
    deployment_id, token = _record_start(
        services, checked, approved_by=approved_by, on_recorded=on_recorded
    )
    now = services.clock.now()
    log.info(
        "deployment %s: %s of %s to %s/%s started by %s",
        deployment_id,
        request.kind,
        checked.tag,
        request.app,
        request.env,
        request.actor,
        extra={
            "deployment": deployment_id,
            "app": request.app,
            "env": request.env,
            "slack_user": request.actor,
        },
    )
    poll = timedelta(seconds=services.config.deploys.poll_interval_s)
    services.scheduler.schedule(
        WATCH_JOB, at=now + poll, job_id=token, deployment_id=deployment_id, token=token
    )

    client = services.aws.get("ecs")
    # DescribeTaskDefinition and RegisterTaskDefinition first, unless the revision exists.
    calls = 1 if checked.task_definition else 3
    with StartClaim(services, deployment_id=deployment_id, budget_s=calls * longest_call_s("ecs")):
        try:
            revision = checked.task_definition or _register(
                services, checked, deployment_id=deployment_id, client=client
            )
        except DeployError as exc:
            fail_start(services, deployment_id=deployment_id, outcome=str(exc), error=exc)
            raise
        settled = before_update(services, deployment_id=deployment_id)
        if settled is not None:
            return settled
        try:
            with aws_call("update the service"):
                state = ecs.update_service(
                    client,
                    cluster=settings.cluster,
                    service=settings.service,
                    task_definition=revision,
                )
        except DeployError as exc:
            if isinstance(exc, DeployFailed) and exc.unanswered:
                return update_unanswered(services, deployment_id=deployment_id, error=exc)
            fail_start(services, deployment_id=deployment_id, outcome=str(exc), error=exc)
            raise
    return service_updated(services, deployment_id=deployment_id, revision=revision, state=state)


def _record_start(
    services: Services,
    checked: Plan,
    *,
    approved_by: list[str],
    on_recorded: Callable[[Session, int], None] | None = None,
) -> tuple[int, str]:
    """Take the lock and record the deployment, claimed; its id and watch token.

    A lock taken since the checks (someone's manual lock, another deploy, another
    takeover of the deployment this one takes over) refuses it, audited, and
    nothing is recorded.
    """
    request = checked.request
    now = services.clock.now()
    with services.sessions() as db_session:
        locks.serialize_locks(db_session, app=request.app, env=request.env)
        manual = service.manual_lock(db_session, app=request.app, env=request.env)
        if manual is not None and manual.holder != request.actor:
            refused = DeployRefused(f"{code(request.label)} is {render.lock_text(manual)}.")
            db_session.rollback()
        else:
            deployment = service.create(
                db_session,
                now=now,
                app=request.app,
                env=request.env,
                kind=request.kind,
                actor=request.actor,
                tag=checked.tag,
                image=checked.image,
                digest=checked.digest,
                previous_image=checked.current_image,
                previous_tag=checked.current_tag,
                previous_task_definition=checked.current_task_definition,
                task_definition=checked.task_definition,
                rollback_of=request.rollback_of,
                channel=checked.channel,
                force_reason=request.force_reason if checked.forced else None,
            )
            deployment.approved_by = list(approved_by)
            deployment.forced = list(checked.forced)
            deployment.scan = dict(checked.scan)
            deployment.watch_job = new_watch_token(deployment.id)
            service.claim(deployment, until=now + START_CLAIM)
            if _take_deploy_lock(db_session, checked, deployment=deployment, now=now):
                _start_recorded(db_session, checked, deployment=deployment, now=now)
                if on_recorded is not None:
                    on_recorded(db_session, deployment.id)
                db_session.commit()
                return deployment.id, deployment.watch_job
            db_session.rollback()  # another deploy took it since the checks
            busy = service.active_for(db_session, app=request.app, env=request.env)
            refused = DeployRefused(
                render.busy_text(busy) if busy else f"{code(request.label)} is busy; try again."
            )
    request_refused(services, request, refused)
    raise refused


def _take_deploy_lock(
    db_session: Session, checked: Plan, *, deployment: Deployment, now: datetime
) -> bool:
    """Give `deployment` the deploy lock; False if another deployment holds it.

    A takeover (`checked.takeover`) takes the lock row over from the deployment it
    takes over, compared and set under the row's lock: of two takeovers of one
    deployment, the second finds the lock held by the first and is refused. The
    deployment taken over keeps running, watched, until this one's service update
    lands; how it held the lock is kept, to be handed back if the update never does.
    """
    request = checked.request
    if checked.takeover is not None:
        held = service.get_lock(
            db_session, app=request.app, env=request.env, kind=LOCK_DEPLOY, lock=True
        )
        if held is not None and held.deployment_id == checked.takeover:
            deployment.observed = {
                **deployment.observed,
                TAKES_OVER: {
                    "deployment": held.deployment_id,
                    "holder": held.holder,
                    "acquired_at": held.acquired_at.isoformat(),
                },
            }
            held.deployment_id = deployment.id
            held.holder = request.actor
            held.acquired_at = now
            db_session.flush()
            return True
    taken = service.take_lock(
        db_session,
        app=request.app,
        env=request.env,
        kind=LOCK_DEPLOY,
        holder=request.actor,
        deployment_id=deployment.id,
        now=now,
    )
    return taken is not None


def _start_recorded(
    db_session: Session, checked: Plan, *, deployment: Deployment, now: datetime
) -> None:
    """The deployment holds the lock: audit its start (and force), count it, announce it."""
    request = checked.request
    taken = (deployment.observed or {}).get(TAKES_OVER)
    record(
        db_session,
        deployment=deployment,
        action=f"{request.kind}.start",
        outcome="ok",
        now=now,
        approved_by=list(deployment.approved_by),
        scan=checked.scan.get("text"),
        **({"takes_over": taken["deployment"]} if isinstance(taken, dict) else {}),
    )
    if checked.forced:
        record(
            db_session,
            deployment=deployment,
            action=f"{request.kind}.force",
            outcome="ok",
            now=now,
            reason=request.force_reason,
            overrode=list(checked.forced),
            checks=list(checked.notes),
        )
    count(db_session, kind=request.kind, outcome="started")
    announce(db_session, deployment=deployment, now=now)


def _register(services: Services, checked: Plan, *, deployment_id: int, client: Any) -> str:
    """Register the revision that changes only the image, and record it; its ARN."""
    with aws_call("register the new task definition revision"):
        current = ecs.describe_task_definition(client, arn=checked.current_task_definition)
        registered = ecs.register_with_image(
            client, current, container=checked.target.settings.container, image=checked.image
        )
    with services.sessions() as db_session:
        row = service.get_or_raise(db_session, deployment_id=deployment_id, lock=True)
        row.task_definition = registered.arn
        db_session.commit()
    return registered.arn


class StartClaim:
    """Claims a "starting" deployment while this process calls AWS for it.

    The claim is renewed from a thread, for no longer than the calls may take
    (`budget_s`, what boto3's retries and timeouts allow them): a start still at
    work is never settled as dead while an update it sent may land. Leaving with
    an error gives the claim up (nothing this process sent is on its way any
    more); a process that dies leaves it to lapse.
    """

    def __init__(
        self,
        services: Services,
        *,
        deployment_id: int,
        budget_s: float,
        every_s: float = RENEW_EVERY_S,
    ) -> None:
        self.services = services
        self.deployment_id = deployment_id
        self.budget = timedelta(seconds=budget_s)
        self.every_s = every_s
        self._until: datetime | None = None  # renewed no later than this
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"deploy-claim-{deployment_id}", daemon=True
        )

    def __enter__(self) -> StartClaim:
        self._until = self.services.clock.now() + self.budget
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        if exc_type is not None:
            self._give_up()

    def renew(self) -> bool:
        """Extend the claim by START_CLAIM from now; False once it is not to be renewed."""
        now = self.services.clock.now()
        if self._until is not None and now > self._until:
            return False  # longer than its calls can take: something else holds it up
        with self.services.sessions() as db_session:
            row = service.get(db_session, deployment_id=self.deployment_id, lock=True)
            if row is None or not settling(row):
                return False
            service.claim(row, until=now + START_CLAIM)
            db_session.commit()
            return True

    def _give_up(self) -> None:
        try:
            with self.services.sessions() as db_session:
                row = service.get(db_session, deployment_id=self.deployment_id, lock=True)
                if row is not None and settling(row):
                    service.claim(row, until=None)
                    db_session.commit()
        except Exception:  # unclaimed or not, it lapses within START_CLAIM
            log.warning(
                "deployment %s: cannot give up its start's claim",
                self.deployment_id,
                exc_info=True,
                extra={"deployment": self.deployment_id},
            )

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                if not self.renew():
                    return
            except Exception:  # the database may be back by the next renewal, within the claim
                log.warning(
                    "deployment %s: cannot renew its start's claim",
                    self.deployment_id,
                    exc_info=True,
                    extra={"deployment": self.deployment_id},
                )


def before_update(services: Services, *, deployment_id: int) -> Deployment | None:
    """Right before the service update: None if the deployment is still "starting".

    Checked under the row lock, where the claim is renewed: nothing settles the
    deployment while its update is on its way. A deployment settled meanwhile is
    not updated: one followed already is returned as it is; one given up raises
    DeployFailed (audited, for the person who asked).
    """
    with services.sessions() as db_session:
        now = services.clock.now()
        row = service.get_or_raise(db_session, deployment_id=deployment_id, lock=True)
        # Only a deployment still starting: one marked stuck meanwhile (its claim had
        # lapsed) may have been taken over with --force, and its update would race that.
        if row.status == STARTING:
            service.claim(row, until=now + START_CLAIM)
            db_session.commit()
            return None
        if row.is_active:
            return row
        record(
            db_session,
            deployment=row,
            action=f"{row.kind}.update",
            outcome="refused",
            now=now,
            status=row.status,
            reason="the deployment was settled before its service update: not updated",
        )
        text = (
            f"Deployment #{row.id} was marked {render.STATUS_WORD.get(row.status, row.status)} "
            f"while its start waited on AWS: {row.outcome or ''}\n"
            "opsbot did not update the service."
        )
        db_session.commit()
    log.warning(
        "deployment %s: %s of %s to %s by %s was %s before its service update: not updated",
        row.id,
        row.kind,
        row.tag,
        row.label,
        row.actor,
        row.status,
        extra=_log_extra(row),
    )
    raise DeployFailed(text)


def fail_start(
    services: Services, *, deployment_id: int, outcome: str, error: BaseException
) -> None:
    """AWS refused a step of the start (or it failed before any update): it failed."""
    with services.sessions() as db_session:
        row = service.get_or_raise(db_session, deployment_id=deployment_id, lock=True)
        if row.is_active:
            finish(
                db_session,
                deployment=row,
                status=FAILED,
                outcome=outcome,
                now=services.clock.now(),
                aws_error=failure_code(error),
            )
        db_session.commit()


def update_unanswered(services: Services, *, deployment_id: int, error: DeployFailed) -> Deployment:
    """The service update's answer was lost: it may have landed, or not.

    The deployment stays "starting", claimed a while longer (AWS may still be at
    it), and its watch settles it from ECS: followed if the service was updated,
    failed if not.
    """
    with services.sessions() as db_session:
        now = services.clock.now()
        row = service.get_or_raise(db_session, deployment_id=deployment_id, lock=True)
        if settling(row):
            service.claim(row, until=now + START_CLAIM)
            row.observed = {**row.observed, UNANSWERED: error.code or "-"}
            record(
                db_session,
                deployment=row,
                action=f"{row.kind}.update",
                outcome="unknown",
                now=now,
                aws_error=error.code,
                reason=str(error),
            )
            thread_reply(
                db_session,
                deployment=row,
                text=(
                    f"AWS did not answer the service update ({code(error.code or '-')}): opsbot "
                    "is checking whether it landed."
                ),
                now=now,
            )
        db_session.commit()
    log.warning(
        "deployment %s: %s of %s to %s by %s: AWS did not answer the service update "
        "(AWS error %s); its watch settles it from ECS",
        row.id,
        row.kind,
        row.tag,
        row.label,
        row.actor,
        error.code or "-",
        extra=_log_extra(row, aws_error=error.code),
    )
    return row


def service_updated(
    services: Services, *, deployment_id: int, revision: str, state: ServiceState
) -> Deployment:
    """ECS accepted the update: the deployment rolls out (taken back if it was given up)."""
    rollout = next(
        (d for d in state.deployments if d.task_definition == revision and d.status == "PRIMARY"),
        state.primary,
    )
    rollout_id = rollout.id if rollout else None
    late: str | None = None
    adopted = False
    with services.sessions() as db_session:
        now = services.clock.now()
        row = service.get_or_raise(db_session, deployment_id=deployment_id, lock=True)
        row.task_definition = revision
        if settling(row):
            rolling_out(db_session, deployment=row, rollout_id=rollout_id, now=now)
        elif not row.is_active:
            late = _late_update(db_session, deployment=row, rollout_id=rollout_id, now=now)
            adopted = late is None
        db_session.commit()
    if late is not None:
        raise DeployFailed(late)
    if adopted:
        schedule_watch(services, deployment_id=deployment_id)
    return row


def _late_update(
    db_session: Session, *, deployment: Deployment, rollout_id: str | None, now: datetime
) -> str | None:
    """The update landed after the deployment was given up (its start stalled past its claim).

    ECS rolls it out: with the environment free, the deployment takes it back and is
    followed again (None). Held by another deployment meanwhile, the channel is told,
    and so is the person (the text returned): ECS rolls out whichever update came last.
    """
    was = deployment.status
    held = service.take_lock(
        db_session,
        app=deployment.app,
        env=deployment.env,
        kind=LOCK_DEPLOY,
        holder=deployment.actor,
        deployment_id=deployment.id,
        now=now,
    )
    if held is not None:
        deployment.outcome = None
        deployment.finished_at = None
        rolling_out(db_session, deployment=deployment, rollout_id=rollout_id, now=now)
        record(
            db_session,
            deployment=deployment,
            action=f"{deployment.kind}.recover",
            outcome="ok",
            now=now,
            actor="opsbot",
            found=f"the service update landed after it was marked {was}: following it",
        )
        log.warning(
            "deployment %s: its service update landed after it was marked %s: following it",
            deployment.id,
            was,
            extra=_log_extra(deployment),
        )
        return None
    busy = service.active_for(db_session, app=deployment.app, env=deployment.env)
    holder = (
        f"deployment #{busy.id} ({render.what(busy)}) of {actor_text(busy.actor)}"
        if busy is not None
        else "another deployment"
    )
    text = (
        f":warning: The service update of deployment #{deployment.id} ({render.what(deployment)})"
        f" landed after it was marked {render.STATUS_WORD.get(was, was)}, while {holder} holds "
        f"{code(deployment.label)}: ECS rolls out whichever update came last. Check "
        f"{code(f'/deploy status {deployment.app} {deployment.env}')}."
    )
    record(
        db_session,
        deployment=deployment,
        action=f"{deployment.kind}.late_update",
        outcome="failed",
        now=now,
        actor="opsbot",
        status=was,
        holder=busy.id if busy is not None else None,
    )
    if deployment.channel:
        outbox.post_or_update(
            db_session,
            key=f"{deployment.message_key}:late-update",
            channel=deployment.channel,
            message=render.lock_notice(text),
            now=now,
        )
    tell_actor(
        db_session,
        deployment=deployment,
        key="late-update",
        message=render.lock_notice(text),
        now=now,
    )
    log.error(
        "deployment %s: its service update landed after it was marked %s, while %s holds %s",
        deployment.id,
        was,
        f"deployment {busy.id}" if busy is not None else "another deployment",
        deployment.label,
        extra=_log_extra(deployment, holder=busy.id if busy is not None else None),
    )
    return text


def rolling_out(
    db_session: Session, *, deployment: Deployment, rollout_id: str | None, now: datetime
) -> None:
    """The service was updated: the deployment rolls out (and says so in its thread).

    The deployment it takes over, if any, is superseded by it now.
    """
    observed = dict(deployment.observed or {})
    taken = observed.get(TAKES_OVER)
    deployment.status = ROLLING_OUT
    deployment.stuck_at = None  # stuck while it could not be settled, if it was
    deployment.ecs_deployment_id = rollout_id
    deployment.started_at = now
    deployment.last_progress_at = now
    deployment.observed = {
        k: v for k, v in observed.items() if k not in (service.CLAIM, UNANSWERED, TAKES_OVER)
    }
    announce(db_session, deployment=deployment, now=now)
    thread_reply(
        db_session,
        deployment=deployment,
        text=(
            f"Service updated to {code(short_task_definition(deployment.task_definition))}"
            + (f" (ECS deployment {code(rollout_id)})" if rollout_id else "")
            + ": watching the rollout."
        ),
        now=now,
    )
    if isinstance(taken, dict):
        _supersede(db_session, by=deployment, deployment_id=int(taken["deployment"]), now=now)


def _supersede(db_session: Session, *, by: Deployment, deployment_id: int, now: datetime) -> None:
    """`by`'s service update landed: the deployment it took over ends, superseded by it.

    One its watch saw end meanwhile (ECS replaced it) is left as it ended.
    """
    old = service.get(db_session, deployment_id=deployment_id, lock=True)
    if old is None or not old.is_active:
        return
    was = old.status
    finish(
        db_session,
        deployment=old,
        status=SUPERSEDED,
        outcome=render.superseded_text(by=by, was=was),
        now=now,
        actor=by.actor,
        superseded_by=by.id,
    )
    thread_reply(
        db_session, deployment=by, text=render.supersedes_text(by, old=old, was=was), now=now
    )


# -- watching ------------------------------------------------------------------------------


def schedule_watch(services: Services, *, deployment_id: int, delay_s: float | None = None) -> None:
    """(Re)schedule the deployment's watch; any older watch job stands down."""
    delay = services.config.deploys.poll_interval_s if delay_s is None else delay_s
    with services.sessions() as db_session:
        row = service.get(db_session, deployment_id=deployment_id, lock=True)
        if row is None or not row.is_active:
            return
        token = new_watch_token(deployment_id)
        row.watch_job = token
        db_session.commit()
    services.scheduler.schedule(
        WATCH_JOB,
        at=services.clock.now() + timedelta(seconds=delay),
        job_id=token,
        deployment_id=deployment_id,
        token=token,
    )


def resume_watch(services: Services, *, deployment_id: int) -> bool:
    """Put back the watch job the deployment names; False if it is no longer active.

    Under the token the deployment keeps (a new one only if it has none), so the
    job is stored again under its own id and replaces it if it was not lost.
    It is due a poll interval after the last look (or the start), at once if that
    is past.
    """
    poll = timedelta(seconds=services.config.deploys.poll_interval_s)
    with services.sessions() as db_session:
        row = service.get(db_session, deployment_id=deployment_id, lock=True)
        if row is None or not row.is_active:
            return False
        if row.watch_job is None:
            row.watch_job = new_watch_token(deployment_id)
        token = row.watch_job
        due = (row.last_checked_at or row.created_at) + poll
        db_session.commit()
    services.scheduler.schedule(
        WATCH_JOB,
        at=max(due, services.clock.now()),
        job_id=token,
        deployment_id=deployment_id,
        token=token,
    )
    return True


def observe(services: Services, *, deployment_id: int) -> str:
    """One look at the deployment's rollout; returns its status afterwards."""
    knobs = services.config.deploys
    now = services.clock.now()
    with services.sessions() as db_session:
        deployment = service.get_or_raise(db_session, deployment_id=deployment_id)
        if not deployment.is_active:
            return deployment.status
        starting = settling(deployment)
        if starting and now < service.settles_at(deployment, grace=_grace(services)):
            return deployment.status  # its start may still be at work: see StartClaim
        seen_count = deployment.observations
        seen = Seen(
            ecs_deployment_id=deployment.ecs_deployment_id,
            task_definition=deployment.task_definition,
            previous_task_definition=deployment.previous_task_definition,
            observed=dict(deployment.observed or {}),
            last_progress_at=deployment.last_progress_at,
            is_stuck=deployment.status == STUCK,
        )
        app, env = deployment.app, deployment.env
    if starting:
        # Past its grace. Outside the session above: reconcile opens its own, and on
        # SQLite (BEGIN IMMEDIATE) a session still open would hold the write lock it waits for.
        return _settle(services, deployment_id=deployment_id)
    target = get_target_or_raise(services.config, app=app, env=env)
    client = services.aws.get("ecs")
    try:
        with aws_call("read the service"):
            state = ecs.describe_service(
                client, cluster=target.settings.cluster, service=target.settings.service
            )
    except DeployError as exc:
        return _unreadable(services, deployment_id=deployment_id, seen_count=seen_count, error=exc)
    stopped = _stopped_tasks(
        client, target=target, seen=seen, state=state, deployment_id=deployment_id
    )
    verdict = assess(
        seen, state, stopped=stopped, now=now, stuck_after=timedelta(minutes=knobs.stuck_after_min)
    )
    with services.sessions() as db_session:
        row = service.get_or_raise(db_session, deployment_id=deployment_id, lock=True)
        if row.observations != seen_count or not row.is_active:
            return row.status  # another observer applied a look meanwhile
        _apply(
            db_session,
            deployment=row,
            verdict=verdict,
            now=now,
            stuck_min=knobs.stuck_after_min,
        )
        db_session.commit()
        return row.status


def _stopped_tasks(
    client: Any, *, target: Target, seen: Seen, state: ServiceState, deployment_id: int
) -> list[ecs.StoppedTask] | None:
    """The rollout's stopped tasks, when ECS counts more failed than were reported; else None.

    Best effort: a look that cannot read them still tells whether the rollout
    moves, completed or failed, and a later look reads them again.
    """
    rollout = ours(seen, state)
    if rollout is None or rollout.failed <= verdicts.reported_count(seen.observed):
        return None
    settings = target.settings
    try:
        with aws_call("read the stopped tasks"):
            return ecs.stopped_tasks(
                client, cluster=settings.cluster, service=settings.service, started_by=rollout.id
            )
    except DeployError as exc:
        aws_error = failure_code(exc)
        log.warning(
            "deployment %s: cannot read the stopped tasks of %s (AWS error %s), "
            "looking without them: %s",
            deployment_id,
            target.label,
            aws_error,
            str(exc),
            extra={
                "deployment": deployment_id,
                "app": target.app,
                "env": target.env,
                "aws_error": aws_error,
            },
        )
        return None


def _grace(services: Services) -> timedelta:
    return timedelta(seconds=services.config.deploys.starting_grace_s)


def _unreadable(
    services: Services, *, deployment_id: int, seen_count: int, error: DeployError
) -> str:
    """The watch cannot read ECS: after `stuck_after_min` of that, the rollout is stuck.

    Nobody can tell how it goes, so the channel is alerted as for a rollout that
    does not move (and a forced deploy may take the environment over); the watch
    goes on, and the first look that reads ECS again takes over from there.
    """
    knobs = services.config.deploys
    now = services.clock.now()
    aws_error = _unreadable_code(error)
    with services.sessions() as db_session:
        row = service.get_or_raise(db_session, deployment_id=deployment_id, lock=True)
        if row.observations != seen_count or not row.is_active:
            return row.status  # another observer applied a look meanwhile
        since = _failing_since(row, UNREADABLE_SINCE, now=now, **{UNREADABLE_CODE: aws_error})
        blind = now - since >= timedelta(minutes=knobs.stuck_after_min)
        if blind and row.status == ROLLING_OUT:
            _mark_stuck(
                db_session,
                deployment=row,
                alert=lambda d: render.unreadable_alert(d, since=since, aws_error=aws_error),
                alert_key=f"{row.message_key}:unreadable:{row.observations}",
                now=now,
                reason=f"opsbot cannot read ECS: {aws_error}",
                aws_error=aws_error,
                unreadable_since=since.isoformat(),
            )
        status = row.status
        db_session.commit()
    log_line = log.error if blind else log.warning
    log_line(
        "deployment %s: cannot read the rollout of %s since %s (AWS error %s)%s: %s",
        row.id,
        row.label,
        since.isoformat(),
        aws_error,
        ": marked stuck" if blind else "",
        str(error),
        extra=_log_extra(row, aws_error=aws_error),
    )
    return status


def _unreadable_code(error: DeployError) -> str:
    """Why ECS cannot be read, as an error code: AWS's, or `ServiceNotFound` (AWS gives none)."""
    if isinstance(error.__cause__, ecs.ServiceNotFound):
        return render.SERVICE_NOT_FOUND
    return failure_code(error)


def _apply(
    db_session: Session,
    *,
    deployment: Deployment,
    verdict: Verdict,
    now: datetime,
    stuck_min: float,
) -> None:
    previous = dict(deployment.observed or {})
    switched = (
        deployment.ecs_deployment_id is not None
        and verdict.ecs_deployment_id is not None
        and verdict.ecs_deployment_id != deployment.ecs_deployment_id
    )
    new_lines = [
        render.stopped_line(t.short_id, t.reason, t.containers) for t in verdict.new_stopped
    ]
    stopped_lines = [*(previous.get("stopped_lines") or []), *new_lines][-10:]
    deployment.observations += 1
    deployment.last_checked_at = now
    deployment.observed = {
        **verdict.counts,
        "most_running": verdicts.high_water(previous, verdict.counts, switched=switched),
        "reported_tasks": list(verdict.reported_tasks),
        "reported_count": verdicts.reported_count(previous) + len(verdict.new_stopped),
        "stopped_lines": stopped_lines,
    }
    if verdict.ecs_deployment_id:
        deployment.ecs_deployment_id = verdict.ecs_deployment_id
    if verdict.kind == verdicts.PROGRESS:
        # Only movement toward the goal puts the stuck deadline off (see rollout.py).
        deployment.last_progress_at = now
        note = ""
        if verdict.resumed and "state" not in previous:
            # Stuck before any look could read ECS: this first look is what later ones
            # are compared with, no sign that it moves.
            note = " (the first look since opsbot could read ECS)"
        elif verdict.resumed:
            deployment.status = ROLLING_OUT
            deployment.stuck_at = None
            note = " (moving again)"
        _report(
            db_session, deployment=deployment, verdict=verdict, lines=new_lines, note=note, now=now
        )
    elif verdict.kind == verdicts.CHANGED:
        _report(db_session, deployment=deployment, verdict=verdict, lines=new_lines, now=now)
    elif verdict.kind == verdicts.STUCK:
        if verdict.changed:
            _report(db_session, deployment=deployment, verdict=verdict, lines=new_lines, now=now)
        _mark_stuck(
            db_session,
            deployment=deployment,
            alert=lambda d: render.stuck_alert(d, minutes=stuck_min),
            alert_key=f"{deployment.message_key}:stuck:{deployment.observations}",
            now=now,
            counts=verdict.counts,
        )
    elif verdict.kind in FINAL_VERDICTS:
        status = FINAL_VERDICTS[verdict.kind]
        took = duration((now - (deployment.started_at or deployment.created_at)).total_seconds())
        revision = short_task_definition(deployment.task_definition)
        if status == COMPLETED:
            outcome = f"Completed in {took}: {counts_text(verdict.counts)} on {code(revision)}."
        elif status == FAILED:
            outcome = f"Failed after {took}: {verdict.summary}."
        else:
            outcome = f"Superseded after {took}: {verdict.summary}."
        if stopped_lines and status != SUPERSEDED:
            outcome += "\n" + "\n".join(f">{line}" for line in stopped_lines[-5:])
        finish(db_session, deployment=deployment, status=status, outcome=outcome, now=now)


def _report(
    db_session: Session,
    *,
    deployment: Deployment,
    verdict: Verdict,
    lines: list[str],
    now: datetime,
    note: str = "",
) -> None:
    """Say the look's counts and newly stopped tasks in the thread, and in the announcement."""
    _progress(
        db_session,
        deployment=deployment,
        item={
            "at": now.isoformat(),
            "state": verdict.counts.get("state"),
            "text": counts_text(verdict.counts) + note,
            "stopped": lines,
        },
        now=now,
    )
    announce(db_session, deployment=deployment, now=now)


FINAL_VERDICTS = {
    verdicts.COMPLETED: COMPLETED,
    verdicts.FAILED: FAILED,
    verdicts.SUPERSEDED: SUPERSEDED,
}


def reconcile(services: Services, *, deployment_id: int) -> str:
    """Settle a deployment left "starting" from the service's state.

    Its start stopped (the bot died mid-start) or lost the answer to its service
    update. If ECS lists the deployment its update made (rolling out, done, or
    already rolled back by the circuit breaker: see `_landed`), the update
    happened: follow it, and the watch says how it went. Otherwise nothing
    changed in ECS: the deployment failed, and its lock is released. A start that
    claims it again meanwhile keeps it.
    """
    with services.sessions() as db_session:
        deployment = service.get_or_raise(db_session, deployment_id=deployment_id)
        if not settling(deployment):
            return deployment.status
        app, env, kind = deployment.app, deployment.env, deployment.kind
        revision, image = deployment.task_definition, deployment.image
        previous = deployment.previous_task_definition
    own = RECONCILERS.get(kind)
    if own is not None:
        return own(services, deployment_id=deployment_id)
    if kind == FLAG_ROLL:  # never by its revision, which runs already: see RECONCILERS
        raise DeployError(f"flag roll #{deployment_id} cannot be settled: restarts is not loaded")
    target = get_target_or_raise(services.config, app=app, env=env)
    client = services.aws.get("ecs")
    with aws_call("read the service"):
        state = ecs.describe_service(
            client, cluster=target.settings.cluster, service=target.settings.service
        )
        primary = state.primary
        running_image = None
        if primary is not None and revision is None and primary.task_definition != previous:
            running_image = ecs.describe_task_definition(
                client, arn=primary.task_definition
            ).image_of(target.settings.container)
    with services.sessions() as db_session:
        now = services.clock.now()
        row = service.get_or_raise(db_session, deployment_id=deployment_id, lock=True)
        if not settling(row):
            return row.status
        if now < service.settles_at(row, grace=_grace(services)):
            return row.status  # its start claimed it again meanwhile: it is at work
        # By the revision: an image says nothing when the revision that ran before had it
        # too (a forced redeploy of the running image). Only a start that died before
        # recording its new revision leaves none: then a new primary of the image is its
        # update.
        if revision is not None:
            landed = _landed(db_session, deployment=row, state=state)
        elif primary is not None and running_image is not None and running_image == image:
            landed = primary
        else:
            landed = None
        cause = why_interrupted(row)
        if landed is not None:
            row.task_definition = landed.task_definition
            rolling_out(db_session, deployment=row, rollout_id=landed.id, now=now)
            found = "the service had been updated: watching it"
            if landed is not primary:
                found = (
                    "the service had been updated (ECS lists that deployment "
                    f"{landed.status}, {landed.rollout_state}): watching it"
                )
            tell_actor(
                db_session,
                deployment=row,
                key=ROLLING_OUT,
                message=render.direct_notice(
                    row,
                    f"Interrupted ({cause}), but the service had been updated: opsbot watches "
                    "the rollout and tells you how it ends.",
                ),
                now=now,
            )
        else:
            finish(
                db_session,
                deployment=row,
                status=FAILED,
                outcome=(
                    f"Interrupted before the service was updated ({cause}); nothing "
                    "changed in ECS. Deploy again."
                ),
                now=now,
                aws_error=(row.observed or {}).get(UNANSWERED),
            )
            found = "the service was never updated: marked failed"
        record(
            db_session,
            deployment=row,
            action=f"{row.kind}.recover",
            outcome="ok",
            now=now,
            actor="opsbot",
            found=found,
        )
        status = row.status
        db_session.commit()
    if status == ROLLING_OUT:
        schedule_watch(services, deployment_id=deployment_id)
    return status


def _landed(db_session: Session, *, deployment: Deployment, state: ServiceState) -> Rollout | None:
    """The ECS deployment the deployment's service update made, if ECS lists one.

    The primary of its revision is; so is any other listed deployment of it (the
    circuit breaker may have rolled it back already, or another update replaced it)
    that is not one a recorded deployment of the environment names. A deploy's
    revision is its own, new: listed at all, its update made it. A rollback's
    revision ran before, so ECS may still list that earlier deployment, draining:
    one that had completed is not this update's.
    """
    primary = state.primary
    if primary is not None and primary.task_definition == deployment.task_definition:
        return primary
    listed = [r for r in state.deployments if r.task_definition == deployment.task_definition]
    if not listed:
        return None
    others = set(
        db_session.scalars(
            select(Deployment.ecs_deployment_id).where(
                Deployment.app == deployment.app,
                Deployment.env == deployment.env,
                Deployment.id != deployment.id,
                Deployment.ecs_deployment_id.in_([r.id for r in listed]),
            )
        )
    )
    own_revision = deployment.kind == DEPLOY
    return next(
        (
            r
            for r in listed
            if r.id not in others and (own_revision or r.rollout_state != "COMPLETED")
        ),
        None,
    )


def why_interrupted(deployment: Deployment) -> str:
    """Why a "starting" deployment is settled by `reconcile`, for people (mrkdwn)."""
    lost = (deployment.observed or {}).get(UNANSWERED)
    if lost:
        return f"AWS did not answer the service update, {code(str(lost))}"
    return "the bot stopped"


def settling(deployment: Deployment) -> bool:
    """Whether the deployment waits to be settled from what really happened.

    "Starting", or marked stuck while it was (`_unsettled`): only `rolling_out`
    sets `started_at`, so a stuck deployment without it never had its service
    update seen, and a look at the rollout would judge a rollout that is not its own.
    """
    return deployment.status == STARTING or (
        deployment.status == STUCK and deployment.started_at is None
    )


def _settle(services: Services, *, deployment_id: int) -> str:
    """Reconcile a "starting" deployment past its grace; its status afterwards.

    One that cannot be settled (ECS, or its change's store, cannot be read) is
    stuck once that has lasted `stuck_after_min` (see `_unsettled`).
    """
    try:
        return reconcile(services, deployment_id=deployment_id)
    except DeployError as exc:
        return _unsettled(services, deployment_id=deployment_id, error=exc)


def _unsettled(services: Services, *, deployment_id: int, error: DeployError) -> str:
    """A "starting" deployment cannot be settled: after `stuck_after_min` past its grace, stuck.

    It holds the deploy lock, and nobody can tell what it did: the channel is alerted
    as for a rollout that does not move, and a forced deploy may take the environment
    over. The watch goes on, and the first look that can settles it from there.
    """
    knobs = services.config.deploys
    now = services.clock.now()
    aws_error = failure_code(error)
    with services.sessions() as db_session:
        row = service.get_or_raise(db_session, deployment_id=deployment_id, lock=True)
        if not settling(row):
            return row.status  # settled by another look meanwhile
        # From the first look that could not settle it, not from the end of its grace:
        # after a long pause of the watch (opsbot down), one failed look is no verdict.
        since = _failing_since(row, UNSETTLED_SINCE, now=now)
        stuck = row.status == STARTING and now - since >= timedelta(minutes=knobs.stuck_after_min)
        if stuck:
            _mark_stuck(
                db_session,
                deployment=row,
                alert=lambda d: render.unsettled_alert(d, since=since, error=str(error)),
                alert_key=f"{row.message_key}:unsettled",
                now=now,
                reason=f"opsbot cannot settle it: {error}",
                aws_error=aws_error,
                unsettled_since=since.isoformat(),
            )
        status = row.status
        db_session.commit()
    log_line = log.error if stuck else log.warning
    log_line(
        "deployment %s: %s of %s to %s by %s cannot be settled since %s (AWS error %s)%s: %s",
        row.id,
        row.kind,
        row.tag,
        row.label,
        row.actor,
        since.isoformat(),
        aws_error,
        ": marked stuck" if stuck else "",
        str(error),
        extra=_log_extra(row, aws_error=aws_error),
    )
    return status


def _failing_since(deployment: Deployment, key: str, *, now: datetime, **also: str) -> datetime:
    """When looks at `deployment` began to fail (kept under `key` of what it observed, with
    `also`): the first failed look's time, `now` when this is the first."""
    observed = dict(deployment.observed or {})
    since_text = observed.get(key)
    since = datetime.fromisoformat(since_text) if isinstance(since_text, str) else now
    deployment.observed = {**observed, key: since.isoformat(), **also}
    return since


def _mark_stuck(
    db_session: Session,
    *,
    deployment: Deployment,
    alert: Callable[[Deployment], dict[str, Any]],
    alert_key: str,
    now: datetime,
    **detail: Any,
) -> None:
    """Mark `deployment` stuck: its message, its `alert` (rendered once it is stuck) in
    its channel or to its actor when it has none, the audit line with `detail`, the count."""
    deployment.status = STUCK
    deployment.stuck_at = now
    announce(db_session, deployment=deployment, now=now)
    message = alert(deployment)
    if deployment.channel:
        outbox.post_or_update(
            db_session, key=alert_key, channel=deployment.channel, message=message, now=now
        )
    tell_actor(
        db_session,
        deployment=deployment,
        key=f"stuck:{deployment.observations}",
        message=message,
        now=now,
    )
    record(
        db_session,
        deployment=deployment,
        action=f"{deployment.kind}.stuck",
        outcome="stuck",
        now=now,
        actor="opsbot",
        **detail,
    )
    count(db_session, kind=deployment.kind, outcome=STUCK)


def recover(services: Services, *, deployment_id: int) -> bool:
    """Make a deploy lock's holder tell the truth; True if the lock is now free.

    A terminal holder frees its lock; a "starting" one past its grace and its
    start's claim is reconciled; a rollout nobody has looked at for a while (its watch job was
    lost with a crash) gets a look now and a new watch.
    """
    knobs = services.config.deploys
    now = services.clock.now()
    with services.sessions() as db_session:
        deployment = service.get(db_session, deployment_id=deployment_id, lock=True)
        if deployment is None:
            return True
        if not deployment.is_active:
            service.release_deploy_lock(db_session, deployment=deployment)
            db_session.commit()
            return True
        status = STARTING if settling(deployment) else deployment.status
        settles = service.settles_at(deployment, grace=_grace(services))
        looked = deployment.last_checked_at or deployment.started_at or deployment.created_at
    stale_after = timedelta(seconds=max(3 * knobs.poll_interval_s, knobs.starting_grace_s))
    try:
        if status == STARTING:
            if now < settles:
                return False  # its start may still be at work: see StartClaim
            return _settle(services, deployment_id=deployment_id) not in (
                STARTING,
                ROLLING_OUT,
                STUCK,
            )
        if now - looked < stale_after:
            return False
        after = observe(services, deployment_id=deployment_id)
    except DeployError as exc:
        log.warning("cannot recover deployment %s: %r", deployment_id, str(exc))
        return False
    if after in (ROLLING_OUT, STUCK):
        schedule_watch(services, deployment_id=deployment_id)
        return False
    return True
