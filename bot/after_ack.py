"""The work a Slack command or click does after its acknowledgement, a few at a time.

Slack waits three seconds for the acknowledgement and then shows the person an
error; the answer may follow for thirty minutes. So listeners acknowledge in
Bolt's listener threads and hand the rest here: a flood of commands and clicks
is acknowledged at once and worked through behind, in the order it came,
without that work competing with the next acknowledgements for the
interpreter. (Bolt runs a listener whole in one of its ten threads and answers
Slack only once `ack()` was called in it: work done in those threads made
later acknowledgements wait for a free thread.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

# Enough that a slow call (an AWS API, PagerDuty's REST API) does not hold up
# everyone's clicks, few enough to leave the interpreter to acknowledgements.
AT_ONCE = 2


class AfterAck:
    def __init__(self, workers: int = AT_ONCE) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="after-ack")

    def run(self, what: str, work: Callable[[], None]) -> None:
        """Queue `work`; `what` names it in the log if it fails (never the user's text)."""
        self._pool.submit(self._guarded, what, work)

    def stop(self) -> None:
        self._pool.shutdown(wait=True)

    @staticmethod
    def _guarded(what: str, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception:
            log.exception("%s failed after its acknowledgement", what)
