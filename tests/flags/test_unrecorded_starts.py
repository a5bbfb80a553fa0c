"""An AppConfig change whose outcome never commits is settled from its intent.

AppConfig runs a deployment once StartDeployment answers, whatever happens to
opsbot next. The change's intent (a `flag.start` line) commits before that
call; when its `flag.change` line does not follow (the process died, the
database failed), the next start looks the version's deployment up: started,
it is recorded, announced and watched as the change would have been; never
started, it is audited failed. The process dies where it talks to AWS (a
botocore hook on its own client raises a BaseException, as after SIGKILL); the
database fails for real, at the driver (SQLAlchemy's before_cursor_execute).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from bot.adapters.aws import longest_call_s
from bot.clock import ManualClock
from bot.flags import flows
from bot.flags import jobs as flag_jobs
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.flags.conftest import RELEASES, FlagWorld
from tests.flags.test_appconfig import audits, change, confirm, thread
from tests.flags.test_ssm_crash import ProcessDied, die_at, said
from tests.flags.test_watch_resume import until_the_end, watches

GRACE_S = 60  # deploys.starting_grace_s of tests/deploys/conftest.py
# StartDeployment and its look, retries and waits included: until then after its
# intent, a change may still be at work.
PATIENCE_S = max(GRACE_S, flows.START_CALLS * longest_call_s("appconfig"))


def crash_at(runtime: Runtime, event: str) -> None:
    """`/flag on apple_pay` on api/prod, confirmed by a process that dies at `event`."""
    flows.submit(runtime, change("on", "apple_pay"))
    die_at(runtime, "appconfig", event)
    with pytest.raises(ProcessDied):
        confirm(runtime)


def next_start(make_runtime: Callable[..., Runtime], clock: ManualClock) -> Runtime:
    """The next process: its start asks for the settling, which runs past the grace."""
    runtime = make_runtime()
    assert [j for j, _ in runtime.scheduler.pending() if j.startswith("flag-settle-")]
    clock.advance(seconds=GRACE_S + 1)
    runtime.scheduler.run_due(clock.now())
    return runtime


def past_patience(runtime: Runtime, clock: ManualClock) -> None:
    """Settle jobs run until StartDeployment and its look (retries and waits included)
    are over since the intent: only then does no deployment listed mean none started."""
    for _ in range(int(PATIENCE_S // GRACE_S) + 1):
        clock.advance(seconds=GRACE_S)
        runtime.scheduler.run_due(clock.now())


def counted(runtime: Runtime, outcome: str) -> float:
    found = runtime.metrics.registry.get_sample_value(
        "opsbot_flag_changes_total", {"outcome": outcome}
    )
    return found or 0.0


@contextmanager
def failing_records(runtime: Runtime, *, times: int) -> Iterator[list[str]]:
    """The database drops the connection on the first `times` inserts of a change done."""
    failed: list[str] = []

    def dropping(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any, **__: Any
    ) -> None:
        values = list(parameters.values() if isinstance(parameters, dict) else parameters or ())
        done = "flag.change" in values and "ok" in values
        if statement.startswith("INSERT INTO audit_records") and done and len(failed) < times:
            failed.append(statement)
            raise OperationalError(statement, {}, Exception("server closed the connection"))

    sa.event.listen(runtime.engine, "before_cursor_execute", dropping)
    try:
        yield failed
    finally:
        sa.event.remove(runtime.engine, "before_cursor_execute", dropping)


def test_a_deployment_started_by_a_process_that_died_is_recorded_watched_and_announced(
    runtime: Runtime,
    make_runtime: Callable[..., Runtime],
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
) -> None:
    crash_at(runtime, "after-call.appconfig.StartDeployment")
    [deployment] = flag_world.deployments()
    assert deployment["ConfigurationVersion"] == "2"
    assert audits(runtime, "flag.change") == []  # died before its outcome was recorded
    [intent] = audits(runtime, "flag.start")
    assert intent.outcome == "starting" and intent.detail["version"] == 2

    after = next_start(make_runtime, clock)
    [made] = audits(after, "flag.change")
    assert (made.outcome, made.actor) == ("ok", "U0ALICE")
    assert made.detail["deployment"] == 1 and made.detail["intent"] == intent.id
    assert made.detail["key"] == intent.detail["key"]
    assert watches(after) == ["flag-watch-api/prod-1-resumed"]
    told = said(releases, "U0ALICE", "AppConfig deployment 1 of version 2 started")
    assert "the bot stopped before recording it" in told

    until_the_end(after, clock)
    texts = thread(releases, containing="COMPLETE")
    assert any("recorded now, and watched" in t for t in texts)
    assert texts[-1].startswith(":white_check_mark: AppConfig deployment 1 is COMPLETE")
    [ended] = audits(after, "flag.deployment")
    assert ended.outcome == "ok" and ended.detail["deployment"] == 1
    assert counted(after, "done") == 1
    # Settled once: another start finds nothing left to settle.
    assert flows.settle_intents(after) == 0
    assert flag_jobs.resume_watches(after) == 0


def test_a_process_that_died_before_starting_the_deployment_is_settled_as_not_started(
    runtime: Runtime,
    make_runtime: Callable[..., Runtime],
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
) -> None:
    crash_at(runtime, "before-call.appconfig.StartDeployment")
    assert flag_world.deployments() == []

    after = next_start(make_runtime, clock)
    # Past the grace, the change could still be inside StartDeployment's retries.
    assert audits(after, "flag.change") == []
    past_patience(after, clock)
    [settled] = audits(after, "flag.change")
    assert (settled.outcome, settled.actor) == ("failed", "U0ALICE")
    assert settled.detail["not_started"] is True and settled.detail["deployment"] is None
    told = said(releases, "U0ALICE", "before AppConfig started deploying it")
    assert "Nothing changed in `api/prod`: ask again" in told
    assert flag_world.deployments() == []
    assert watches(after) == []
    assert counted(after, "failed") == 1


def test_a_young_intent_waits_for_its_grace(
    runtime: Runtime,
    make_runtime: Callable[..., Runtime],
    flag_world: FlagWorld,
    clock: ManualClock,
) -> None:
    crash_at(runtime, "after-call.appconfig.StartDeployment")
    after = make_runtime()  # at once: the change may still be at work in its process
    after.scheduler.run_due(clock.now())
    assert audits(after, "flag.change") == []
    clock.advance(seconds=GRACE_S + 1)
    after.scheduler.run_due(clock.now())
    [made] = audits(after, "flag.change")
    assert made.outcome == "ok" and made.detail["deployment"] == 1


def test_a_record_that_fails_once_after_the_start_is_made_again_at_once(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock, releases: SlackEmulator
) -> None:
    flows.submit(runtime, change("on", "apple_pay"))
    with failing_records(runtime, times=1) as failed:
        result = confirm(runtime)
    assert len(failed) == 1
    assert "version 2 written, AppConfig deployment 1 started" in result
    [made] = audits(runtime, "flag.change")
    assert made.outcome == "ok" and made.detail["settled"] is True
    assert watches(runtime) == ["flag-watch-api/prod-1-resumed"]
    until_the_end(runtime, clock)
    texts = thread(releases, containing="COMPLETE")
    assert texts[-1].startswith(":white_check_mark: AppConfig deployment 1 is COMPLETE")
    # The answer was given: nobody is told again in a message of their own.
    assert not [m for m in releases.all_messages() if m.channel == "U0ALICE"]
    announced = [m for m in releases.channel_messages(RELEASES) if "Flag apple_pay" in m.text]
    assert len(announced) == 1


def test_a_database_that_stays_away_after_the_start_says_so_and_the_next_start_records_it(
    runtime: Runtime,
    make_runtime: Callable[..., Runtime],
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
) -> None:
    flows.submit(runtime, change("on", "apple_pay"))
    with failing_records(runtime, times=2):
        result = confirm(runtime)
    assert "AppConfig deployment 1 started, but opsbot could not record it" in result
    assert audits(runtime, "flag.change") == []

    after = next_start(make_runtime, clock)
    [made] = audits(after, "flag.change")
    assert made.outcome == "ok" and made.detail["deployment"] == 1
    until_the_end(after, clock)
    [ended] = audits(after, "flag.deployment")
    assert ended.outcome == "ok"
