"""Another instance settles a change's intent while the change is still at work.

Each instance, at its start, has every unsettled intent settled by a
`flags.settle` job (tests/flags/test_unrecorded_starts.py). The change that
committed the intent may still be inside StartDeployment then: the client's
retries and waits outlast the start grace. Here the other instance is a second
runtime on the same database, clock and AWS front door, whose settle job runs
from a botocore hook on the first runtime's own AppConfig client, in the middle
of its StartDeployment; AppConfig's answers come from the sandbox's front door.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from bot.audit import service as audit
from bot.clock import ManualClock
from bot.config import parse_config
from bot.flags import flows
from bot.runtime import Runtime
from sandbox.appconfig import _error
from sandbox.server import HttpRequest, HttpResponse
from sandbox.slack import SlackEmulator
from tests.flags.conftest import RELEASES, FlagWorld, flag_config
from tests.flags.test_appconfig import audits, change, confirm, thread
from tests.flags.test_lost_answers import list_deployments, start_deployment
from tests.flags.test_ssm_crash import said
from tests.flags.test_unrecorded_starts import (
    GRACE_S,
    PATIENCE_S,
    counted,
    crash_at,
    past_patience,
)
from tests.flags.test_watch_resume import until_the_end, watches


def settled_meanwhile(
    runtime: Runtime,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    *,
    event: str,
    after_s: float,
) -> list[Runtime]:
    """At `event` of `runtime`'s AppConfig client, `after_s` past the intent, another
    instance starts and runs its due jobs (its settle job among them)."""
    others: list[Runtime] = []

    def other_instance(**_: Any) -> None:
        if others:
            return
        clock.advance(seconds=after_s)
        others.append(make_runtime())
        others[0].scheduler.run_due(clock.now())

    runtime.aws.get("appconfig").meta.events.register(event, other_instance)
    return others


def settle_jobs(runtime: Runtime) -> list[str]:
    return [job for job, _ in runtime.scheduler.pending() if job.startswith("flag-settle-")]


def test_a_settle_past_the_grace_while_start_deployment_retries_does_not_say_not_started(
    runtime: Runtime,
    make_runtime: Callable[..., Runtime],
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
) -> None:
    flows.submit(runtime, change("on", "apple_pay"))
    # StartDeployment's retries have run a minute past the grace when it lands.
    others = settled_meanwhile(
        runtime,
        make_runtime,
        clock,
        event="before-call.appconfig.StartDeployment",
        after_s=GRACE_S + 60,
    )

    answer = confirm(runtime)

    assert "version 2 written, AppConfig deployment 1 started" in answer
    [line] = audits(runtime, "flag.change")
    assert (line.outcome, line.detail["deployment"]) == ("ok", 1)
    assert "settled" not in line.detail
    [intent] = audits(runtime, "flag.start")
    assert settle_jobs(others[0]) == [f"flag-settle-{intent.id}"]  # looked again later
    assert len(watches(runtime)) == 1
    assert not [m for m in releases.all_messages() if m.channel == "U0ALICE"]
    assert counted(runtime, "failed") == 0

    past_patience(others[0], clock)  # its later looks find the change recorded
    assert len(audits(runtime, "flag.change")) == 1
    assert settle_jobs(others[0]) == []


def test_a_deployment_recorded_as_not_started_whose_start_lands_is_recorded_started(
    runtime: Runtime,
    make_runtime: Callable[..., Runtime],
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
) -> None:
    flows.submit(runtime, change("on", "apple_pay"))
    # The other instance waits out StartDeployment and its look; this one is slower still.
    settled_meanwhile(
        runtime,
        make_runtime,
        clock,
        event="before-call.appconfig.StartDeployment",
        after_s=PATIENCE_S + 1,
    )

    answer = confirm(runtime)

    assert "version 2 written, AppConfig deployment 1 started" in answer
    assert "recorded it as not started" in answer
    first, corrected = audits(runtime, "flag.change")
    assert (first.outcome, first.detail["not_started"]) == ("failed", True)
    assert (corrected.outcome, corrected.detail["deployment"]) == ("ok", 1)
    assert corrected.detail["intent"] == first.detail["intent"]
    assert corrected.detail["corrects"] == first.id
    assert len(watches(runtime)) == 1
    # The message that said nothing changed is replaced by what happened.
    told = said(releases, "U0ALICE", "started after all")
    assert "AppConfig deployment 1 of version 2" in told
    assert not [m for m in releases.all_messages() if "before AppConfig started" in m.text]

    until_the_end(runtime, clock)
    texts = thread(releases, containing="COMPLETE")
    assert texts[-1].startswith(":white_check_mark: AppConfig deployment 1 is COMPLETE")
    announced = [m for m in releases.channel_messages(RELEASES) if "Flag apple_pay" in m.text]
    assert len(announced) == 1


def test_intents_past_the_first_two_hundred_are_still_settled(
    runtime: Runtime,
    make_runtime: Callable[..., Runtime],
    flag_world: FlagWorld,
    clock: ManualClock,
) -> None:
    # A week of changes, each settled (an outcome line names its intent).
    with runtime.sessions() as db:
        for n in range(flows.SETTLE_BATCH + 1):
            intent = audit.record(
                db,
                at=clock.now() - timedelta(hours=1),
                actor="U0ALICE",
                action=flows.START,
                target="flag:api/prod",
                outcome=flows.STARTING,
                detail={"app": "api", "env": "prod", "version": 100 + n, "key": f"k{n}"},
            )
            db.flush()
            audit.record(
                db,
                at=clock.now() - timedelta(hours=1),
                actor="U0ALICE",
                action=flows.CHANGE,
                target="flag:api/prod",
                outcome="ok",
                detail={"intent": intent.id, "deployment": None},
            )
        db.commit()
    crash_at(runtime, "after-call.appconfig.StartDeployment")
    [*_, lost] = audits(runtime, "flag.start")

    after = make_runtime()
    assert settle_jobs(after) == [f"flag-settle-{lost.id}"]
    clock.advance(seconds=GRACE_S + 1)
    after.scheduler.run_due(clock.now())
    [made] = [a for a in audits(after, "flag.change") if a.detail["intent"] == lost.id]
    assert (made.outcome, made.detail["deployment"]) == ("ok", 1)


def test_a_failure_after_another_instance_recorded_the_start_writes_no_second_outcome(
    runtime: Runtime,
    make_runtime: Callable[..., Runtime],
    flag_world: FlagWorld,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = flag_world.gaps.handle
    denied = _error(403, "AccessDeniedException", "not authorized to perform ListDeployments")
    seen = {"started": False, "lists": 0}

    def handle(request: HttpRequest) -> HttpResponse | None:
        """StartDeployment lands, and its retry meets it (ConflictException); of the looks
        after it, the other instance's is answered and this one's refused."""
        if start_deployment(request):
            real(request)
            seen["started"] = True
            return _error(409, "ConflictException", "Deployment 1 is in progress")
        if list_deployments(request) and seen["started"]:
            seen["lists"] += 1
            if seen["lists"] == 2:
                return denied
        return real(request)

    monkeypatch.setattr(flag_world.gaps, "handle", handle)
    flows.submit(runtime, change("on", "apple_pay"))
    settled_meanwhile(
        runtime,
        make_runtime,
        clock,
        event="after-call.appconfig.StartDeployment",
        after_s=GRACE_S + 1,
    )

    answer = confirm(runtime)

    assert "AppConfig deployment 1 started" in answer
    assert "may have started" not in answer
    [line] = audits(runtime, "flag.change")  # the other instance's: the only outcome
    assert (line.outcome, line.detail["deployment"], line.detail["settled"]) == ("ok", 1, True)
    assert counted(runtime, "failed") == 0
    assert len(watches(runtime)) == 1  # the other instance's watch; none of this one's


def test_a_settle_of_an_environment_without_appconfig_flags_is_not_retried(
    runtime: Runtime,
    make_runtime: Callable[..., Runtime],
    flag_world: FlagWorld,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    crash_at(runtime, "after-call.appconfig.StartDeployment")
    [intent] = audits(runtime, "flag.start")
    config = flag_config(flag_world)
    del config["apps"]["api"]["environments"]["prod"]["flags"]  # its flags removed meanwhile

    after = make_runtime(parse_config(config))
    clock.advance(seconds=GRACE_S + 1)
    with caplog.at_level(logging.ERROR, logger="bot.flags.jobs"):
        after.scheduler.run_due(clock.now())

    assert settle_jobs(after) == []
    [logged] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert logged.name == "bot.flags.jobs" and logged.__dict__["intent"] == intent.id
    assert "no feature flags configured" in logged.getMessage()
    assert audits(after, "flag.change") == []  # what AppConfig did is unknown: nothing recorded


def test_a_start_refused_after_another_instance_recorded_it_not_started_writes_no_second_line(
    runtime: Runtime,
    make_runtime: Callable[..., Runtime],
    flag_world: FlagWorld,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = flag_world.gaps.handle
    refused = _error(400, "BadRequestException", "the strategy is being deleted")

    def handle(request: HttpRequest) -> HttpResponse | None:
        return refused if start_deployment(request) else real(request)

    monkeypatch.setattr(flag_world.gaps, "handle", handle)
    flows.submit(runtime, change("on", "apple_pay"))
    others = settled_meanwhile(
        runtime,
        make_runtime,
        clock,
        event="before-call.appconfig.StartDeployment",
        after_s=PATIENCE_S + 1,
    )

    answer = confirm(runtime)

    assert "the strategy is being deleted" in answer
    assert "recorded the change as not started" in answer
    assert "Nothing is deployed to `api/prod` yet" in answer
    [line] = audits(runtime, "flag.change")  # the other instance's
    assert (line.outcome, line.detail["not_started"]) == ("failed", True)
    assert (counted(others[0], "failed"), counted(runtime, "failed")) == (1, 0)
