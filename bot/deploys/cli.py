"""`opsbot deploy`: the Slack deploy path, driven from a terminal or a pipeline.

The CLI acts as the Slack user its identity (`github:<login>#<id>` in GitHub
Actions, else `os:<user>`) maps to in `rights.cli`, and is held to everything
that person would be in Slack: their rights and `force_allowed`, the locks,
the freeze, the scan, and a protected environment's clicks, where nobody
approves their own request. An identity with no mapping is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.approvals import service as approvals
from bot.approvals.models import DONE, EXECUTING, PENDING
from bot.apps.errors import AppError, AppNotFound
from bot.audit import service as audit
from bot.deploys import flows
from bot.deploys.confirm import deployment_of
from bot.deploys.errors import DeployError, DeployRefused
from bot.deploys.models import ACTIVE, COMPLETED, DEPLOY, Deployment
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.deploys.rollout import counts_text
from bot.rights.errors import RightMissing
from bot.typed import has_control

if TYPE_CHECKING:
    from bot.apps.services import Services

# Exit codes (2 is the CLI's own: bad configuration or arguments).
OK = 0  # started (with --wait: completed)
# AWS, or something else, failed while deploying; with --wait also: the request's run was
# interrupted before it recorded a deployment, so there is nothing of it to follow.
FAILED = 1
BAD_INPUT = 2  # no such app or environment in the configuration, or a --force reason too long
REFUSED = 3  # a check said no (tag, scan, freeze, lock...), or the confirmation was not given
ROLLOUT_FAILED = 4  # --wait: the rollout failed (circuit breaker) or was superseded
TIMEOUT = 5  # --wait: not finished (or not confirmed) in time

# The longest `--force` reason taken, from Slack and from the CLI: as much as the
# deploy form's field takes and a deployment's message shows.
FORCE_REASON_MAX = 500


# The audit's name for a CLI whose token was refused: it is nobody we know.
UNVERIFIED = "unverified"


def _refuse_identity(services: Services, *, identity: str, app: str, env: str, reason: str) -> None:
    with services.sessions() as db_session:
        audit.record(
            db_session,
            at=services.clock.now(),
            actor=f"cli:{identity}",
            action="deploy.request",
            target=f"deploy:{app}/{env}",
            outcome="refused",
            detail={"reason": reason},
        )
        db_session.commit()


def run_deploy(
    services: Services,
    *,
    app: str,
    env: str,
    tag: str,
    identify: Callable[[], str],
    force_reason: str | None,
    wait: bool,
    timeout_s: float,
    say: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """Submit a deploy as /deploy does; with `wait`, follow it to its end. Return the exit code.

    `identify` names who runs the CLI (TokenRefused when a token names nobody).
    """
    if force_reason is not None and len(force_reason) > FORCE_REASON_MAX:
        say(f"refused: the --force reason is too long ({FORCE_REASON_MAX} characters at most)")
        return BAD_INPUT
    if force_reason is not None and has_control(force_reason):
        say("refused: the --force reason holds a control character (a NUL, an escape…)")
        return BAD_INPUT
    identity = UNVERIFIED
    try:
        identity = identify()
        actor = services.rights.cli_user(identity)
    except RightMissing as exc:
        _refuse_identity(services, identity=identity, app=app, env=env, reason=str(exc))
        say(f"refused: {exc}")
        return REFUSED
    request = Request(
        app=app,
        env=env,
        actor=actor,
        kind=DEPLOY,
        tag=tag,
        force_reason=force_reason,
        cli_identity=identity,
    )
    try:
        accepted = submit(services, request)
    except AppNotFound as exc:
        say(f"refused: {exc}")
        return BAD_INPUT
    except (AppError, DeployRefused) as exc:
        say(f"refused: {exc}")
        return REFUSED
    except DeployError as exc:
        say(f"failed: {exc}")
        return FAILED
    say(accepted.text)
    if not wait:
        return OK
    deadline = monotonic() + timeout_s
    poll_s = services.config.deploys.poll_interval_s
    deployment_id = accepted.deployment_id
    if accepted.request_id is not None:
        # Only the deployment this request's run started is followed (it records it on
        # the request): never another one of the same person in the same environment.
        while True:
            with services.sessions() as db_session:
                action = approvals.get_or_raise(db_session, action_id=accepted.request_id)
                status, result, interrupted = action.status, action.result, action.interrupted
                deployment_id = deployment_of(action)
            if status not in (PENDING, EXECUTING):
                break
            if monotonic() > deadline:
                say(f"timed out: request #{accepted.request_id} is still {status}")
                return TIMEOUT
            sleep(min(poll_s, 2.0))
        if interrupted and deployment_id is not None:
            # The process running the request stopped after it recorded the deployment:
            # whether it deployed is the deployment's to say (it is reconciled), not "not deployed".
            say(
                f"request #{accepted.request_id} was interrupted after deployment "
                f"#{deployment_id} was recorded: following it"
            )
        elif interrupted:
            say(
                f"request #{accepted.request_id} was interrupted before a deployment was "
                f"recorded: nothing to follow. Check {app}/{env} before you ask again."
            )
            return FAILED
        elif status != DONE:
            say(f"not deployed: request #{accepted.request_id} {status}: {result or ''}".strip())
            return REFUSED
        if deployment_id is None:
            say(
                f"request #{accepted.request_id} ran but recorded no deployment to follow: "
                f"{result or ''}".strip()
            )
            return FAILED
    assert deployment_id is not None
    last = ""
    while True:
        try:
            status = flows.observe(services, deployment_id=deployment_id)
        except DeployError as exc:
            say(f"cannot read the rollout: {exc}")
            status = "unknown"
        with services.sessions() as db_session:
            deployment = db_session.get(Deployment, deployment_id)
            assert deployment is not None
            line = f"{deployment.status}: {counts_text(deployment.observed or {})}"
            outcome = deployment.outcome
            status = deployment.status
        if line != last:
            say(line)
            last = line
        if status not in ACTIVE:
            if outcome:
                say(outcome)
            return OK if status == COMPLETED else ROLLOUT_FAILED
        if monotonic() > deadline:
            say(f"timed out: deployment #{deployment_id} is still {status}")
            return TIMEOUT
        sleep(poll_s)
