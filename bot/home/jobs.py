"""Refreshing App Home on change, within Slack's limits: one bounded loop on the leader.

views.publish is Tier 4 (about 100 calls a minute for the workspace). Every
`refresh_interval_s` the leader compares a cheap fingerprint of what Home shows
(open incidents, today's deploys and flag changes, windows); when it moved,
everyone who opened Home in the last `recent_h` hours is owed a refresh. Those
are published oldest-owed first, each person at most once per `debounce_s`
(changes in between coalesce into one view), and at most
`max_refreshes_per_min` a minute overall, so the publishes of people opening
Home keep their share of the tier. A view that did not change for its viewer
is not sent. A publish Slack did not answer (or asked to wait for) ends the
round: its viewer and the round's rest stay owed. Nothing here must survive a
crash: a refresher's first look counts as a change, so a new leader brings
every recent viewer up to date, and this is in memory, not in the outbox.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.config import HomeSettings
from bot.home.flows import HomeViews

log = logging.getLogger(__name__)

MAX_VIEWERS = 5000  # the recent viewers read per change


class HomeRefresher:
    def __init__(
        self,
        *,
        views: HomeViews,
        settings: HomeSettings,
        clock: Clock,
        is_leader: Callable[[], bool],
    ) -> None:
        self.views = views
        self.settings = settings
        self.clock = clock
        self.is_leader = is_leader
        self._owed: OrderedDict[str, None] = OrderedDict()  # who is owed a refresh, oldest first
        self._last_refresh: dict[str, datetime] = {}
        self._sent: deque[datetime] = deque()  # refreshes in the last minute
        self._fingerprint: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.settings.refresh_interval_s <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="home-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.refresh_interval_s):
            if not self.is_leader():
                continue
            try:
                self.tick()
            except Exception:
                log.exception("App Home refresh failed; trying again at the next tick")

    def _owe_again(self, user_ids: list[str]) -> None:
        with self._lock:
            for user_id in reversed(user_ids):
                self._owed[user_id] = None
                self._owed.move_to_end(user_id, last=False)

    def _refreshed_now(self, user_id: str) -> None:
        with self._lock:
            self._owed.pop(user_id, None)
            self._last_refresh[user_id] = self.clock.now()

    def opened(self, user_id: str) -> str:
        """`user_id` opened Home: publish their view; it counts as their last refresh."""
        self._refreshed_now(user_id)
        return self._owed_unless_answered(user_id, self.views.opened(user_id))

    def clicked(self, user_id: str) -> str:
        """`user_id` clicked on Home: publish what it did (or why it was refused) now."""
        self._refreshed_now(user_id)
        return self._owed_unless_answered(user_id, self.views.clicked(user_id))

    def _owed_unless_answered(self, user_id: str, outcome: str) -> str:
        if outcome == "unanswered":  # refreshed once the debounce has passed
            self._owe_again([user_id])
        return outcome

    def tick(self) -> list[str]:
        """One round: note a change, then publish to whoever is owed and may be; who was."""
        now = self.clock.now()
        fingerprint = self.views.fingerprint(now=now)
        with self._lock:
            # The first look counts as a change: what changed while no instance led (a
            # restart, a new leader) is shown too; a view that did not is not sent.
            if fingerprint != self._fingerprint:
                self._fingerprint = fingerprint
                since = now - timedelta(hours=self.settings.recent_h)
                viewers = self.views.recent_viewers(since=since, limit=MAX_VIEWERS)
                for user_id in reversed(viewers):
                    self._owed[user_id] = None
            while self._sent and self._sent[0] <= now - timedelta(minutes=1):
                self._sent.popleft()
            budget = self.settings.max_refreshes_per_min - len(self._sent)
            debounce = timedelta(seconds=self.settings.debounce_s)
            due: list[str] = []
            for user_id in self._owed:
                if len(due) >= budget:
                    break
                last = self._last_refresh.get(user_id)
                if last is None or now - last >= debounce:
                    due.append(user_id)
            for user_id in due:
                del self._owed[user_id]
                self._last_refresh[user_id] = now
                self._sent.append(now)
        published = []
        for done, user_id in enumerate(due):
            outcome = self.views.publish(user_id, why="refresh", force=False)
            if outcome == "ok":
                published.append(user_id)
            elif outcome == "unanswered":
                # Slack may take it later: this viewer and the round's rest stay owed, first.
                self._owe_again(due[done:])
                break
        if due:
            log.info("App Home: %s refreshed, %s still owed", len(published), len(self._owed))
        return published
