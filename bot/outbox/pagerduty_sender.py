"""Sending PagerDuty Events API v2 deliveries with the `pagerduty` client."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx2
import pagerduty

from bot.outbox.results import Dead, Job, Result, Retry, Sent, retry_after_s

log = logging.getLogger(__name__)

# The Events API documents no Retry-After; without one, hold the routing key this long.
RATE_LIMIT_PAUSE_S = 20.0
# Failures after which the request surely never reached PagerDuty.
NEVER_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, ConnectionRefusedError)


class PagerDutySender:
    """Sends one event through the client for the routing key its delivery names."""

    def __init__(self, client_for: Callable[[str], pagerduty.EventsApiV2Client | None]) -> None:
        self.client_for = client_for

    def send(self, job: Job) -> Result:
        payload = dict(job.payload)
        env_name = str(payload.pop("routing_key_env"))
        action = str(payload.pop("action"))
        dedup_key = str(payload.pop("dedup_key"))
        client = self.client_for(env_name)
        if client is None:
            # Kept, not dropped: the page goes out once the variable is set.
            return Retry(error=f"routing key variable {env_name} is not set", after_s=60.0)
        try:
            client.send_event(action, dedup_key=dedup_key, **payload)
        except pagerduty.HttpError as exc:
            response = exc.response
            assert response is not None  # HttpError always carries its response
            status = response.status_code
            if status == 429:  # pauses this routing key only
                pause_s = retry_after_s(response.headers, default=RATE_LIMIT_PAUSE_S)
                return Retry(
                    error="PagerDuty rate limit (429)", after_s=pause_s, pause_target_s=pause_s
                )
            if response.is_success:
                # The client wants a JSON body naming the dedup_key; a 2xx is PagerDuty's
                # word that it took the event, whatever came with it.
                log.warning(
                    "delivery %s: PagerDuty took the %s (%s) with an unexpected body",
                    job.id,
                    action,
                    status,
                    extra={"delivery": job.id, "dedup_key": dedup_key, "status": status},
                )
                return Sent()
            if status >= 500 or status == 408 or status // 100 == 3:
                # A 408, or a 3xx (from a proxy: the Events API redirects nowhere), is no
                # event taken: it goes again. Were it taken after all, the same event
                # under the same dedup_key changes nothing in PagerDuty.
                return Retry(error=f"PagerDuty answered {status}")
            return Dead(error=f"PagerDuty refused the event ({status}): {response.text[:300]}")
        except pagerduty.Error as exc:
            # The client wraps the transport's last failure: was a byte ever sent?
            sent = not isinstance(exc.__cause__, NEVER_SENT)
            return Retry(error=f"PagerDuty unreachable: {exc}", ambiguous=_late(action, sent))
        except OSError as exc:
            sent = not isinstance(exc, NEVER_SENT)
            return Retry(
                error=f"PagerDuty unreachable: {type(exc).__name__}", ambiguous=_late(action, sent)
            )
        return Sent()


def _late(action: str, sent: bool) -> bool:
    """Whether the next attempt waits out the lease: an event that may still land
    must not land after the one that follows it under its dedup_key (a resolve
    after the new page that a re-ALARM sends). A trigger is retried sooner: a
    page is urgent, and the resolve after it waits out the reopen window."""
    return sent and action != "trigger"
