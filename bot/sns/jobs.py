"""Keeping the SNS signing certificates an instance fetched, and loading them at start.

A certificate is written a few seconds after its fetch rather than at once: the
fetch is made for the first notification of a burst (a storm's first page), and
the write would compete with that page for the interpreter and the database.
One lost to a crash in those seconds is only fetched again.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.sns import service
from bot.sns.verify import CACHE_SIZE, SnsVerifier

log = logging.getLogger(__name__)

KEEP_AFTER_S = 5.0
# AWS rotates SNS signing certificates under new URLs; one not fetched for a week
# is fetched again rather than trusted from the database.
KEPT_FOR = timedelta(days=7)


class CertificateKeeper:
    def __init__(
        self, *, sessions: sessionmaker[Session], clock: Clock, keep_after_s: float = KEEP_AFTER_S
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.keep_after_s = keep_after_s
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()

    def fetched(self, url: str, pem: bytes) -> None:
        """`SnsVerifier.on_fetched`: keep it, a little later, on a thread of its own."""
        timer = threading.Timer(self.keep_after_s, self._keep, args=(url, pem))
        timer.name = "sns-certificate-keep"
        timer.daemon = True
        with self._lock:
            self._timers = [t for t in self._timers if t.is_alive()]
            self._timers.append(timer)
        timer.start()

    def stop(self) -> None:
        """Keep nothing more (the runtime is stopping); a stop loses only a fetch."""
        with self._lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()

    def _keep(self, url: str, pem: bytes) -> None:
        try:
            with self.sessions() as db_session:
                service.keep(db_session, url=url, pem=pem, now=self.clock.now(), most=CACHE_SIZE)
                db_session.commit()
        except IntegrityError:  # another instance kept it at the same moment
            log.info("SNS certificate %s: kept by another instance", url, extra={"url": url})
            return
        except Exception:
            log.exception("SNS certificate %s: not kept; a restart fetches it again", url)
            return
        log.info("SNS certificate %s kept for the next start", url, extra={"url": url})

    def preload(self, verifier: SnsVerifier) -> int:
        """Load the certificates kept within `KEPT_FOR` into `verifier`; how many it took."""
        with self.sessions() as db_session:
            kept = service.kept_since(
                db_session, since=self.clock.now() - KEPT_FOR, most=CACHE_SIZE
            )
        loaded = 0
        for url, pem in reversed(kept):  # the newest last, as the most recently used
            if verifier.preload(url, pem):
                loaded += 1
            else:
                log.warning(
                    "SNS certificate %s kept earlier: not used (off the pattern, or not "
                    "an RSA certificate); fetched when a notification needs it",
                    url,
                )
        log.info("SNS certificates: %d of %d kept earlier loaded", loaded, len(kept))
        return loaded
