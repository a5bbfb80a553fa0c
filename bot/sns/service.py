"""Keeping SNS signing certificates across restarts. Functions add and flush; the caller commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.sns.models import SnsCertificate


def keep(db_session: Session, *, url: str, pem: bytes, now: datetime, most: int) -> None:
    """Keep the certificate fetched from `url`, and only the `most` fetched last."""
    db_session.merge(SnsCertificate(url=url, pem=pem.decode("ascii"), fetched_at=now))
    db_session.flush()
    newest = select(SnsCertificate.url).order_by(SnsCertificate.fetched_at.desc()).limit(most)
    db_session.execute(
        delete(SnsCertificate)
        .where(SnsCertificate.url.not_in(newest.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )


def kept_since(db_session: Session, *, since: datetime, most: int) -> list[tuple[str, bytes]]:
    """(url, PEM) of the certificates fetched at or after `since`, the newest first."""
    query = (
        select(SnsCertificate.url, SnsCertificate.pem)
        .where(SnsCertificate.fetched_at >= since)
        .order_by(SnsCertificate.fetched_at.desc())
        .limit(most)
    )
    return [(url, pem.encode("ascii")) for url, pem in db_session.execute(query)]
