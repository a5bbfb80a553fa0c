"""Engines and sessions for SQLite (embedded default) and PostgreSQL (production).

Every engine is bounded: a PostgreSQL connection attempt gives up after
`connect_s`, a statement is cancelled after `statement_s`, and a session left
idle inside a transaction is ended after `idle_in_transaction_s`; a SQLite
statement waits at most `statement_s` for the database lock.

Both ends of a PostgreSQL connection notice a silent peer within a minute (TCP
keepalives and `tcp_user_timeout`). A pooled PostgreSQL connection the server has
ended is replaced before use (`_check_out`), without the round trip SQLAlchemy's
`pool_pre_ping` spends on every checkout.
"""

from __future__ import annotations

import functools
import logging
import select
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import ArgumentError, InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker

# A peer gone without a word (a task frozen or killed, a NAT or a failover dropping the
# path) is noticed within about a minute, from both ends, instead of the operating
# system's two hours of keepalive silence or fifteen minutes of retransmissions. The
# server's side matters most: it ends the dead leader's session, and with it the
# scheduler's advisory lock, so that another instance takes over the jobs.
KEEPALIVE_IDLE_S = 30
KEEPALIVE_INTERVAL_S = 10
KEEPALIVE_COUNT = 3
DEAD_PEER_S = KEEPALIVE_IDLE_S + KEEPALIVE_INTERVAL_S * KEEPALIVE_COUNT


@dataclass(frozen=True)
class DbTimeouts:
    """How long connecting, one statement and an idle open transaction may take."""

    connect_s: int = 5
    statement_s: float = 30.0
    idle_in_transaction_s: float = 60.0

    def postgresql_options(self) -> str:
        """libpq `options`: the server-side timeouts, set for every session at connect."""
        statement_ms = max(1, round(self.statement_s * 1000))
        idle_ms = max(1, round(self.idle_in_transaction_s * 1000))
        return (
            f"-c statement_timeout={statement_ms} -c idle_in_transaction_session_timeout={idle_ms}"
            f" -c tcp_keepalives_idle={KEEPALIVE_IDLE_S}"
            f" -c tcp_keepalives_interval={KEEPALIVE_INTERVAL_S}"
            f" -c tcp_keepalives_count={KEEPALIVE_COUNT}"
            f" -c tcp_user_timeout={DEAD_PEER_S * 1000}"
        )


DEFAULT_TIMEOUTS = DbTimeouts()


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs (SQLAlchemy would pick psycopg2)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def database_password_forms(url: str) -> list[str]:
    """The password of a database URL as it is written and as it is decoded (for redaction)."""
    try:
        password = make_url(url).password
    except ArgumentError:
        return []
    if not password:
        return []
    raw = urlsplit(url).netloc.rpartition("@")[0].partition(":")[2]
    return sorted({str(password), raw, unquote(raw)} - {""})


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_ms: int) -> None:
    # Autocommit at the driver level, so that SQLAlchemy's BEGIN below is the
    # only transaction control; IMMEDIATE takes the write lock up front and
    # avoids the "database is locked" upgrade failure under concurrent writers.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _postgresql_connect_args(parsed: Any, timeouts: DbTimeouts) -> dict[str, Any]:
    """Timeouts as libpq parameters; those the URL itself sets win."""
    args: dict[str, Any] = {}
    if "connect_timeout" not in parsed.query:
        args["connect_timeout"] = timeouts.connect_s
    keepalives = {
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE_S,
        "keepalives_interval": KEEPALIVE_INTERVAL_S,
        "keepalives_count": KEEPALIVE_COUNT,
        "tcp_user_timeout": DEAD_PEER_S * 1000,
    }
    args.update({k: v for k, v in keepalives.items() if k not in parsed.query})
    given = parsed.query.get("options")
    given = " ".join(given) if isinstance(given, tuple) else given
    # Later settings win in `options`: the URL's own come after ours.
    args["options"] = f"{timeouts.postgresql_options()} {given or ''}".strip()
    return args


log = logging.getLogger(__name__)

# A pooled connection idle longer than this is pinged before use: a network path
# (a NAT, a failover) may drop an idle connection without telling either end.
PING_AFTER_IDLE_S = 30.0
IDLE_SINCE = "opsbot_idle_since"  # the connection record's info: time.monotonic() at check-in


def _checked_in(_dbapi_connection: Any, record: Any) -> None:
    record.info[IDLE_SINCE] = time.monotonic()


def _readable(fileno: int) -> bool:
    poller = select.poll()
    poller.register(fileno, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


ENDED = "ended"  # on_replaced's reasons
UNANSWERED = "unanswered_ping"


def _check_out(
    dialect: Dialect,
    ping_after_idle_s: float,
    on_replaced: Callable[[str], None] | None,
    dbapi_connection: Any,
    record: Any,
    _proxy: Any,
) -> None:
    """Replace a pooled connection the server has ended, and every older one with it.

    A server that ends a session (a restart, a failover, pg_terminate_backend)
    sends its reason and closes the socket, which leaves an idle connection's
    socket readable: a look at it costs no round trip. Only a connection idle
    longer than `ping_after_idle_s` is pinged as well.
    """
    idle_since = record.info.get(IDLE_SINCE)
    if idle_since is None:  # just connected
        return
    why = reason = None
    if dbapi_connection.closed or dbapi_connection.broken or _readable(dbapi_connection.fileno()):
        why, reason = "the server ended it", ENDED
    elif time.monotonic() - idle_since > ping_after_idle_s:
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            why, reason = f"it did not answer a ping ({type(exc).__name__})", UNANSWERED
    if why is not None and reason is not None:
        if on_replaced is not None:
            on_replaced(reason)
        log.warning(
            "database: a pooled connection is replaced, and every older one: %s",
            why,
            extra={"reason": why},
        )
        raise InvalidatePoolError(why)


def make_engine(
    url: str,
    *,
    timeouts: DbTimeouts = DEFAULT_TIMEOUTS,
    ping_after_idle_s: float = PING_AFTER_IDLE_S,
    on_replaced: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> Engine:
    """`on_replaced(reason)`: told of each pooled connection found dead at checkout
    (PostgreSQL), `ENDED` by the server or an `UNANSWERED` ping."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        busy_ms = max(1, round(timeouts.statement_s * 1000))
        event.listen(engine, "connect", functools.partial(_sqlite_pragmas, busy_ms=busy_ms))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        connect_args = {
            **_postgresql_connect_args(parsed, timeouts),
            **kwargs.pop("connect_args", {}),
        }
        kwargs["connect_args"] = connect_args
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    # The connection used last is handed out first: the one the start-up warm-up
    # used (its backend has the tables' catalog cached) serves the first alarm.
    kwargs.setdefault("pool_use_lifo", True)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "checkin", _checked_in)
    event.listen(
        engine,
        "checkout",
        functools.partial(_check_out, engine.dialect, ping_after_idle_s, on_replaced),
    )
    return engine


def open_connections(engine: Engine, count: int) -> None:
    """Open `count` pooled connections now, so that the first alarm does not wait for them."""
    held: list[Connection] = []
    try:
        for _ in range(count):
            held.append(engine.connect())
    finally:
        for connection in held:
            connection.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
