"""POST /sns in batches: notifications that arrive together are recorded in one transaction,
each answered only once that transaction is committed, and applied after.

Held for real: the test locks a table on PostgreSQL, so the intake's writer
waits inside a batch for as long as the test wants while more notifications
arrive behind it; killing the writer's connection makes a batch fail mid-way.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DataError

from bot.alarms.intake import RECORDED
from bot.alarms.models import ReceivedMessage
from bot.alarms.service import Inbound
from bot.db.engine import make_engine
from sandbox.alarms import alarm_message
from sandbox.sns import SnsSigner, body
from tests.conftest import TOPIC_ARN
from tests.sns.test_endpoint import HEADERS, nothing_stored, rows
from tests.support import LiveService, wait_for

POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _alarms(signer: SnsSigner, count: int, prefix: str) -> list[bytes]:
    return [
        body(
            signer.notification(
                alarm_message(name=f"{prefix}-{n}-5xx", state="ALARM"), topic_arn=TOPIC_ARN
            )
        )
        for n in range(count)
    ]


def _forged(signer: SnsSigner) -> bytes:
    envelope = signer.notification(alarm_message(name="prod-x", state="ALARM"), topic_arn=TOPIC_ARN)
    envelope["Message"] = alarm_message(name="prod-forged", state="ALARM")
    return body(envelope)


def _send(service: LiveService, pool: ThreadPoolExecutor, raw: bytes) -> Future[httpx.Response]:
    return pool.submit(service.post, "/sns", content=raw, headers=HEADERS)


def _waiting_on_a_lock(engine: sa.Engine) -> list[int]:
    with engine.connect() as connection:
        # This test's database only: the cluster is shared with other tests.
        query = (
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [int(pid) for pid in connection.exec_driver_sql(query).scalars()]


def _batches(service: LiveService) -> tuple[float, float]:
    """(batches, notifications in them) recorded over HTTPS so far."""
    registry = service.runtime.metrics.registry
    labels = {"via": "https"}
    count = registry.get_sample_value("opsbot_intake_batch_size_count", labels) or 0.0
    total = registry.get_sample_value("opsbot_intake_batch_size_sum", labels) or 0.0
    return count, total


def _incident_names(service: LiveService) -> set[str]:
    with service.runtime.sessions() as db:
        return set(db.scalars(sa.text("SELECT alarm_name FROM incidents")))


@POSTGRESQL
def test_notifications_that_arrive_together_commit_together_and_a_forged_one_alone_fails(
    service: LiveService, sns_signer: SnsSigner, database_url: str
) -> None:
    first, *together = _alarms(sns_signer, 6, "prod-batch")
    engine = make_engine(database_url)
    with ThreadPoolExecutor(8) as pool, engine.connect() as lock:
        lock.exec_driver_sql("LOCK TABLE incidents IN ACCESS EXCLUSIVE MODE")
        try:
            held = _send(service, pool, first)  # the writer's batch waits on the lock
            wait_for(lambda: _waiting_on_a_lock(engine))
            answers = [_send(service, pool, raw) for raw in together]
            forged = _send(service, pool, _forged(sns_signer))
            # The forged one is refused at once, batch or no batch.
            assert forged.result(30).status_code == 403
            wait_for(lambda: service.runtime.intake.waiting() == 5)
            # Nobody is answered before their batch is committed.
            assert not held.done() and not any(a.done() for a in answers)
        finally:
            lock.rollback()
        assert held.result(30).status_code == 200
        assert [a.result(30).status_code for a in answers] == [200] * 5
        # The first was applied before its answer. Of the five behind it, with nothing
        # pending, the first to arrive was applied alone too; the four after it were
        # recorded together, and answered before they were applied.
        assert held.result().json()["message"].startswith("incident ")
        messages = [a.result().json()["message"] for a in answers]
        applied = [m for m in messages if m != RECORDED]
        assert len(applied) == 1 and applied[0].startswith("incident ")
    engine.dispose()
    # Six recorded in three transactions: one, one, and four together (the
    # warm-up's is not counted: it records via "warm-up").
    assert _batches(service) == (3, 6)
    # The first, finding the writer idle, went alone and at once, and so did the
    # first of the batch behind it (a storm's first page waits for no batch).
    alone = service.runtime.metrics.registry.get_sample_value(
        "opsbot_intake_batch_size_bucket", {"via": "https", "le": "1.0"}
    )
    assert alone == 2
    wait_for(lambda: _incident_names(service) == {f"prod-batch-{n}-5xx" for n in range(6)})
    assert rows(service)["received_messages"] == 6


@POSTGRESQL
def test_a_batch_whose_connection_dies_mid_way_answers_5xx_to_all_and_writes_nothing(
    service: LiveService, sns_signer: SnsSigner, database_url: str
) -> None:
    first, *together = _alarms(sns_signer, 5, "prod-lost")
    engine = make_engine(database_url)
    with ThreadPoolExecutor(8) as pool, engine.connect() as lock:
        # Every batch, recorded and applied or only recorded, waits to write its rows.
        lock.exec_driver_sql("LOCK TABLE received_messages IN ACCESS EXCLUSIVE MODE")
        try:
            held = _send(service, pool, first)
            [writer] = wait_for(lambda: _waiting_on_a_lock(engine))
            answers = [_send(service, pool, raw) for raw in together]
            wait_for(lambda: service.runtime.intake.waiting() == 4)
            lock.exec_driver_sql(f"SELECT pg_terminate_backend({writer})")
            assert held.result(30).status_code == 503
            # The four behind it make the next batch, nothing pending: its first is
            # applied alone, then the other three are recorded together, each
            # transaction waiting on the lock in turn. A backend told to end still
            # shows as waiting until it has: the next writer is one not told yet.
            ended = {writer}
            for _batch in range(2):
                [writer] = wait_for(lambda: sorted(set(_waiting_on_a_lock(engine)) - ended))
                lock.exec_driver_sql(f"SELECT pg_terminate_backend({writer})")
                ended.add(writer)
            statuses = [a.result(30).status_code for a in answers]
        finally:
            lock.rollback()
    engine.dispose()
    assert statuses == [503] * 4
    assert _batches(service) == (3, 5)
    assert nothing_stored(service)
    # SNS delivers them again: now they are recorded, once each.
    for raw in [first, *together]:
        assert post_raw(service, raw).status_code == 200
    assert rows(service)["received_messages"] == 5


def test_a_burst_is_answered_in_full_on_either_database(
    service: LiveService, sns_signer: SnsSigner
) -> None:
    alarms = _alarms(sns_signer, 12, "prod-burst")
    with ThreadPoolExecutor(13) as pool:
        answers = [_send(service, pool, raw) for raw in alarms]
        forged = _send(service, pool, _forged(sns_signer))
        assert [a.result(60).status_code for a in answers] == [200] * 12
        assert forged.result(60).status_code == 403
    wait_for(lambda: _incident_names(service) == {f"prod-burst-{n}-5xx" for n in range(12)})
    assert _batches(service)[1] == 12
    # Again, all of them: duplicates, answered and not recorded twice.
    assert all(post_raw(service, raw).status_code == 200 for raw in alarms)
    assert rows(service)["received_messages"] == 12


def post_raw(service: LiveService, raw: bytes) -> httpx.Response:
    return service.post("/sns", content=raw, headers=HEADERS)


@POSTGRESQL
def test_a_notification_the_database_refuses_fails_alone_and_the_rest_of_its_batch_commits(
    service: LiveService,
) -> None:
    intake = service.runtime.intake
    good = [
        Inbound(
            message_id=f"m-good-{n}",
            via="https",
            body=alarm_message(name=f"prod-ok-{n}-5xx", state="ALARM"),
            topic_arn=TOPIC_ARN,
        )
        for n in range(2)
    ]
    # PostgreSQL refuses a NUL in text: a genuine publisher could send one.
    refused = Inbound(message_id="m-nul", via="https", body="a notice with a \x00 in it")
    outcomes = intake.record_batch([good[0], refused, good[1]])
    assert isinstance(outcomes[1], DataError)
    assert all(isinstance(o, str) and o.startswith("incident ") for o in (outcomes[0], outcomes[2]))
    assert _incident_names(service) == {"prod-ok-0-5xx", "prod-ok-1-5xx"}
    with service.runtime.sessions() as db:
        ids = set(db.scalars(sa.select(ReceivedMessage.message_id)))
    assert ids == {"m-good-0", "m-good-1"}
