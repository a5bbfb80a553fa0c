"""A window's end and a silence's end on one incident at the same moment do not deadlock.

A silence's end locks its incident, then share-locks the window that may hold its page;
a window's end locks the window, then the alarms it held. The window's end leaves an
alarm still silenced unlocked (the silence's end resumes it), so the two never wait for
each other the wrong way round. PostgreSQL only: SQLite has one writer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from bot.incidents.models import Incident
from bot.maintenance import flows
from bot.maintenance import service as windows
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import T0, incident_message, only_incident, outbox_idle, send_alarm
from tests.maintenance.conftest import silence, windows_of
from tests.support import LiveService, wait_for

NAME = "prod-api-5xx"


def test_a_window_s_end_and_a_silence_s_end_at_once_do_not_deadlock(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
) -> None:
    service = start()
    if service.runtime.engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL only")
    silence(service, slack, f"silence {NAME} for 30m reason deploy")
    send_alarm(service, sns_signer, NAME, "ALARM", T0)
    incident = wait_for(lambda: only_incident(service, NAME))
    wait_for(lambda: incident_message(slack, incident))
    wait_for(lambda: outbox_idle(service))
    clock.advance(minutes=29)
    until = clock.now() + timedelta(milliseconds=500)  # its job runs a moment early
    with service.runtime.sessions() as db:  # the incident's own silence ends now too
        row = db.get(Incident, incident.id)
        assert row is not None
        row.silenced_until = until
        db.commit()
    [window] = windows_of(service)
    silence_end = threading.current_thread()
    errors: dict[str, BaseException] = {}

    def end_window() -> None:
        try:
            with service.runtime.sessions() as db:
                locked = windows.lock(db, window_id=window.id)
                assert locked is not None
                flows.close(db, window=locked, by="U0ALICE", now=clock.now())
                db.commit()
        except BaseException as exc:
            errors["window end"] = exc

    window_end = threading.Thread(target=end_window)

    def meanwhile(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The silence's end holds its incident and is about to read the window: the
        # window's end starts now and locks the window first.
        first = window_end.ident is None
        if first and "FOR SHARE" in statement and threading.current_thread() is silence_end:
            window_end.start()
            window_end.join(1.5)

    engine = service.runtime.engine
    sa.event.listen(engine, "before_cursor_execute", meanwhile)
    try:
        try:
            service.runtime.jobs["incidents.silence_end"](
                incident_id=incident.id, until=until.isoformat()
            )
        except BaseException as exc:
            errors["silence end"] = exc
        window_end.join(30)
    finally:
        sa.event.remove(engine, "before_cursor_execute", meanwhile)

    assert window_end.ident is not None  # the two met
    assert errors == {}
