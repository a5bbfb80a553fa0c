"""A lost AppConfig watch is resumed at start; a job store failing never fails a made change.

The watch (`flags.watch`) keeps its state in its job's arguments only, and
APScheduler removes a date job when it hands it to a worker: a process dying
in a look loses it. `resume_watches`, run at start, watches again each
deployment whose `flag.change` line the audit has and whose `flag.deployment`
end it has not. The job store is made to fail for real: the scheduler is
stopped, as when its database is away.
"""

from __future__ import annotations

import sqlalchemy as sa

from bot.approvals.models import PendingAction
from bot.clock import ManualClock
from bot.flags import flows
from bot.flags import jobs as flag_jobs
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.flags.conftest import RELEASES, FlagWorld
from tests.flags.test_appconfig import audits, change, confirm, thread, tick
from tests.support import wait_for


def watches(runtime: Runtime) -> list[str]:
    return [job for job, _ in runtime.scheduler.pending() if job.startswith("flag-watch-")]


def until_the_end(runtime: Runtime, clock: ManualClock) -> None:
    for _ in range(20):  # 2 minutes deploying, 1 baking, looked at every 10 s
        tick(runtime, clock)


def test_a_job_store_failure_after_the_commit_leaves_the_change_done_and_resumable(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock, releases: SlackEmulator
) -> None:
    flows.submit(runtime, change("on", "apple_pay"))
    runtime.scheduler.stop()  # the job store is away when the watch is scheduled
    result = confirm(runtime)
    assert "version 2 written, AppConfig deployment 1 started" in result
    with runtime.sessions() as db:
        [action] = db.scalars(sa.select(PendingAction)).all()
        assert action.status == "done"
    [made] = audits(runtime, "flag.change")
    assert made.outcome == "ok" and made.detail["deployment"] == 1

    runtime.scheduler.start(runtime.jobs)  # the next start, and its step that resumes watches
    assert watches(runtime) == []
    [resume] = [hook for hook in runtime.on_start if hook.__name__ == "resume_flag_watches"]
    resume(runtime)
    assert len(watches(runtime)) == 1
    until_the_end(runtime, clock)
    texts = thread(releases, containing="COMPLETE")
    assert texts[-1].startswith(":white_check_mark: AppConfig deployment 1 is COMPLETE")
    [ended] = audits(runtime, "flag.deployment")
    assert ended.outcome == "ok" and ended.detail["deployment"] == 1
    assert flag_jobs.resume_watches(runtime) == 0  # ended: nothing to resume


def test_a_watch_lost_with_its_process_is_resumed_once_in_the_same_thread(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock, releases: SlackEmulator
) -> None:
    flows.submit(runtime, change("on", "apple_pay"))
    confirm(runtime)
    tick(runtime, clock)  # one look: DEPLOYING 50%, the next look stored
    [stored] = watches(runtime)
    runtime.scheduler.cancel(stored)  # handed to a worker, which died with its process

    assert flag_jobs.resume_watches(runtime) == 1
    assert flag_jobs.resume_watches(runtime) == 0  # its next look is stored: not twice
    assert watches(runtime) == ["flag-watch-api/prod-1-resumed"]
    until_the_end(runtime, clock)
    texts = thread(releases, containing="COMPLETE")
    assert texts[-1].startswith(":white_check_mark: AppConfig deployment 1 is COMPLETE")
    # One announcement, updated in place: the resumed watch kept the change's message.
    announced = wait_for(
        lambda: [m for m in releases.channel_messages(RELEASES) if "Flag apple_pay" in m.text]
    )
    assert len(announced) == 1
    assert len(audits(runtime, "flag.deployment")) == 1


def test_two_watches_of_one_deployment_end_it_once(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock
) -> None:
    """Two instances starting at once may both resume a watch: the end is recorded once."""
    flows.submit(runtime, change("on", "apple_pay"))
    confirm(runtime)
    [info] = flows.unwatched_deployments(runtime)
    flows.schedule_watch(runtime, info=info, last="", job_id="flag-watch-api/prod-1-other")
    assert len(watches(runtime)) == 2
    until_the_end(runtime, clock)
    [ended] = audits(runtime, "flag.deployment")
    assert ended.outcome == "ok"
    assert watches(runtime) == []
