"""Typed calls over the `pagerduty` package's REST API v2 client.

Every call either returns what PagerDuty said or raises PagerDutyRefused (it
said no) or PagerDutyUnavailable (no usable answer); the client the adapter
builds hands a 429 back as it comes, never resent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any, TypeVar

import httpx2
import pagerduty

from bot.pagerduty.errors import PagerDutyRefused, PagerDutyUnavailable

T = TypeVar("T")

MAX_ONCALLS = 1000


@dataclass(frozen=True)
class PagerDutyUser:
    id: str
    name: str
    email: str


def _user(data: dict[str, Any]) -> PagerDutyUser:
    return PagerDutyUser(
        id=str(data["id"]),
        name=str(data.get("name") or data.get("summary") or data["id"]),
        email=str(data.get("email") or ""),
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reason(response: Any) -> str:
    """PagerDuty's own words from an error body: message and the errors it lists."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}"
    if not isinstance(error, dict):
        return str(error)[:300]
    parts = [str(error.get("message") or f"HTTP {response.status_code}")]
    details = [str(e) for e in error.get("errors") or []]
    if details:
        parts.append(": " + "; ".join(details))
    return "".join(parts)[:500]


# A wait beyond this is taken as this: one odd header must not stop the token for days.
MAX_WAIT_S = 3600.0
# A 429 that says no wait still pauses the token's lane (as the Events sender's does).
UNSAID_WAIT_S = 20.0


def _wait_s(response: Any) -> float | None:
    """Seconds a 429 asks to wait: `ratelimit-reset` (PagerDuty's), else `Retry-After`."""
    for name in ("ratelimit-reset", "retry-after"):
        value = response.headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            continue
        if seconds == seconds:  # not NaN
            return min(max(seconds, 0.0), MAX_WAIT_S)
    return None


# Failures after which the request surely never reached PagerDuty.
NEVER_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, ConnectionRefusedError)


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except pagerduty.HttpError as exc:
        response = exc.response
        status = response.status_code if response is not None else 0
        if status == 429 and response is not None:
            raise PagerDutyUnavailable(
                "PagerDuty answered 429 (rate limit)",
                retry_after_s=_wait_s(response) or UNSAID_WAIT_S,
            ) from None
        if status >= 500 or response is None:
            raise PagerDutyUnavailable(
                f"PagerDuty answered {status or 'nothing'}", may_have_landed=status != 503
            ) from None
        raise PagerDutyRefused(_reason(response), status=status) from None
    except pagerduty.Error as exc:
        # The client wraps the transport's last failure: was a byte ever sent?
        never_sent = isinstance(exc.__cause__, NEVER_SENT)
        raise PagerDutyUnavailable(
            f"PagerDuty unreachable: {exc}", may_have_landed=not never_sent
        ) from None
    except OSError as exc:
        raise PagerDutyUnavailable(
            f"PagerDuty unreachable: {type(exc).__name__}",
            may_have_landed=not isinstance(exc, NEVER_SENT),
        ) from None


def _when(text: Any) -> datetime | None:
    """A PagerDuty timestamp (ISO 8601, `Z` for UTC), or None."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _newest_first(incident: dict[str, Any]) -> tuple[datetime, int]:
    """An incident's place by age: `created_at` (to the second), then its number,
    which PagerDuty gives in the order it opens them. REST calls the number
    `incident_number`; `number` is the webhooks' name."""
    number = incident.get("incident_number")
    if number is None:
        number = incident.get("number")
    try:
        rank = int(number) if number is not None else 0
    except (TypeError, ValueError, OverflowError):
        rank = 0
    return _when(incident.get("created_at")) or EPOCH, rank


def _service_id(incident: dict[str, Any]) -> str | None:
    service = incident.get("service")
    return str(service["id"]) if isinstance(service, dict) and service.get("id") else None


class PagerDutyRest:
    def __init__(
        self, client: pagerduty.RestApiV2Client, *, once: pagerduty.RestApiV2Client | None = None
    ) -> None:
        self.client = client
        # A POST that may have landed must not be sent again blindly: these go
        # through a client that makes no network retries of its own.
        self.once = once or client

    # -- users ----------------------------------------------------------------------

    def find_user_by_email(self, email: str) -> PagerDutyUser | None:
        """The user whose email is exactly `email` (case-insensitive), found by `query`."""
        found = _call(lambda: self.client.find("users", email, attribute="email"))
        return _user(found) if found else None

    def get_user(self, user_id: str) -> PagerDutyUser | None:
        try:
            data = _call(lambda: self.client.rget(f"/users/{user_id}"))
        except PagerDutyRefused as exc:
            if exc.status == 404:
                return None
            raise
        return _user(data) if isinstance(data, dict) else None

    # -- incidents ---------------------------------------------------------------------

    def get_incident(self, incident_id: str) -> dict[str, Any]:
        data = _call(lambda: self.client.rget(f"/incidents/{incident_id}"))
        assert isinstance(data, dict)
        return data

    def find_incident_by_key(
        self, incident_key: str, *, service_id: str | None = None
    ) -> dict[str, Any] | None:
        """The newest incident opened with this dedup key, if any; of `service_id` when given.

        Dedup keys are per service: another service's incident may carry the same key.
        The service is also checked here, so an answer that ignored the filter cannot
        name another service's incident.
        """
        # PagerDuty lists in ascending order unless told: newest first, so the first
        # page holds the newest, and compared here too, as an answer may ignore it.
        params: dict[str, Any] = {
            "incident_key": incident_key,
            "date_range": "all",
            "sort_by": "created_at:desc",
        }
        if service_id is not None:
            params["service_ids"] = [service_id]
        found = _call(lambda: list(islice(self.client.iter_all("incidents", params=params), 50)))
        if service_id is not None:
            found = [i for i in found if _service_id(i) == service_id]
        if not found:
            return None
        return max(found, key=_newest_first)

    def update_incident(
        self, incident_id: str, *, from_email: str, change: dict[str, Any]
    ) -> dict[str, Any]:
        """PUT /incidents/{id} as the user `from_email`: acknowledge, resolve, escalate."""
        body = {"incident": {"type": "incident_reference", **change}}
        data = _call(
            lambda: self.client.rput(
                f"/incidents/{incident_id}", json=body, headers={"From": from_email}
            )
        )
        assert isinstance(data, dict)
        return data

    def add_note(self, incident_id: str, *, from_email: str, content: str) -> dict[str, Any]:
        data = _call(
            lambda: self.once.rpost(
                f"/incidents/{incident_id}/notes",
                json={"note": {"content": content}},
                headers={"From": from_email},
            )
        )
        assert isinstance(data, dict)
        return data

    def find_note(self, incident_id: str, *, content: str, since: datetime | None) -> str | None:
        """The id of a note on the incident saying `content`, made at or after `since`."""
        notes = _call(lambda: self.client.rget(f"/incidents/{incident_id}/notes"))
        for note in notes if isinstance(notes, list) else []:
            if not isinstance(note, dict) or note.get("content") != content:
                continue
            made = _when(note.get("created_at"))
            if since is None or (made is not None and made >= since):
                return str(note.get("id") or "") or None
        return None

    # -- on-call -----------------------------------------------------------------------

    def oncalls(
        self,
        *,
        since: datetime,
        until: datetime,
        escalation_policy_ids: Iterable[str] = (),
        schedule_ids: Iterable[str] = (),
    ) -> list[dict[str, Any]]:
        """Every on-call entry overlapping [since, until], for the policies or schedules given."""
        params: dict[str, Any] = {"since": _iso(since), "until": _iso(until)}
        if escalation_policy_ids:
            params["escalation_policy_ids"] = list(escalation_policy_ids)
        if schedule_ids:
            params["schedule_ids"] = list(schedule_ids)
        return _call(
            lambda: list(islice(self.client.iter_all("oncalls", params=params), MAX_ONCALLS))
        )

    def search(self, resource: str, name: str) -> list[dict[str, Any]]:
        """Schedules or escalation policies whose name contains `name` (PagerDuty's `query`)."""
        return _call(
            lambda: list(islice(self.client.iter_all(resource, params={"query": name}), 100))
        )
