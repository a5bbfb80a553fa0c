"""Leader election with a PostgreSQL advisory lock held on a dedicated connection.

When the leader's process dies its connection closes and PostgreSQL releases
the lock, so another instance takes over at its next attempt. A leader that
stands down (it stops, or a check fails) unlocks and closes that connection
rather than pooling it, so that the next leader need not wait either. SQLite is
the single-instance embedded default: there, the one process always leads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)

# An arbitrary constant that names "the opsbot scheduler" among advisory locks.
LOCK_KEY = 0x0B5B07


class Leadership:
    def __init__(
        self,
        engine: Engine,
        *,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], None],
        interval_s: float = 5.0,
        lock_key: int = LOCK_KEY,
    ) -> None:
        self.engine = engine
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.interval_s = interval_s
        self.lock_key = lock_key
        self.is_leader = False
        self._connection: Connection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.engine.dialect.name != "postgresql":
            self._elect()
            return
        self._thread = threading.Thread(target=self._loop, name="leader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._depose()

    def _elect(self) -> None:
        self.is_leader = True
        log.info("this instance now runs scheduled jobs")
        self.on_elected()

    def _depose(self) -> None:
        held = self.is_leader
        if held:
            self.is_leader = False
            self.on_deposed()
        if self._connection is not None:
            self._let_go(self._connection, held=held)
            self._connection = None

    def _let_go(self, connection: Connection, *, held: bool) -> None:
        """Release the lock and end the connection's session.

        `close()` alone would return the connection to the pool with its session,
        and the session's lock, still alive: no other instance could lead until the
        pool is disposed. Unlocking frees it at once; invalidating closes the
        session for good, which releases the lock too when the unlock failed.
        """
        if held:
            try:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.lock_key})
            except Exception as exc:
                log.warning(
                    "unlocking the scheduler's lock failed (%s); closing its session instead",
                    type(exc).__name__,
                    extra={"lock_key": self.lock_key},
                )
        try:
            connection.invalidate()
            connection.close()
        except Exception:
            log.debug("closing the leadership connection failed", exc_info=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._check()
            except Exception as exc:
                log.warning("leadership check failed (%s); standing down", type(exc).__name__)
                self._depose()
            self._stop.wait(self.interval_s)

    def _check(self) -> None:
        if self.is_leader:
            assert self._connection is not None
            self._connection.execute(text("SELECT 1"))  # still holding the lock's session
            return
        if self._connection is None:
            self._connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = self._connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": self.lock_key}
        ).scalar()
        if got:
            self._elect()
