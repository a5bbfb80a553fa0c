"""Checks at start that refuse a configuration which would fail in silence.

`opsbot serve` and `opsbot check-config` both call `preflight` and exit 2 on
any refusal, each naming its key:

- a route that pages (or the ops key) names a routing-key variable that is
  unset or empty: it would post, and never page;
- a route escalates by itself (`escalate_after_min`) but PAGERDUTY_API_TOKEN is
  unset: its reminders would promise an escalation that never comes;
- a configured channel (routes, notices, on-call, handoffs, release channels,
  the ops channel) does not exist in Slack, or is archived, checked with the
  bot's token when one is set (`conversations.info` for ids, `conversations.list`
  of unarchived channels for `#names`).

Slack unreachable, or refusing the token, is only a warning: the intake must
start without Slack, and the outbox keeps the work until Slack is back.

`offline` checks a file away from where opsbot runs (a deploy pipeline, a
laptop): the secrets the file names are listed as needed rather than looked
for, and Slack is not asked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.config import Config
from bot.rights.workspace import CHANNEL_ID, MAX_PAGES, PAGE_SIZE

log = logging.getLogger(__name__)

NOT_FOUND = {"channel_not_found"}
MISSING = "does not exist in Slack"
ARCHIVED = "is archived (Slack refuses every post there)"


@dataclass
class Preflight:
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    slack_token_refused: bool = False
    # Offline: each variable the running service must have set, with the keys that need it.
    needs: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.refusals


def configured_channels(config: Config) -> list[tuple[str, str]]:
    """(key path, channel) for every channel the configuration names."""
    found: list[tuple[str, str]] = [
        (f"alarm_routes[{n}].channel", route.channel) for n, route in enumerate(config.alarm_routes)
    ]
    if config.alarms.notices_channel:
        found.append(("alarms.notices_channel", config.alarms.notices_channel))
    if config.oncall.pagerduty_channel:
        found.append(("oncall.pagerduty_channel", config.oncall.pagerduty_channel))
    for n, handoff in enumerate(config.oncall.handoffs):
        found.append((f"oncall.handoffs[{n}].channel", handoff.channel))
    for name, app in sorted(config.apps.items()):
        for env, target in sorted(app.environments.items()):
            if target.release_channel:
                found.append(
                    (f"apps.{name}.environments.{env}.release_channel", target.release_channel)
                )
    if config.ops_channel:
        found.append(("ops_channel", config.ops_channel))
    return found


def _routing_key_variables(config: Config) -> list[tuple[str, str, str]]:
    """(key path, variable, what an unset one would do) for each routing key the file names."""
    found = [
        (
            f"alarm_routes[{n}].pagerduty_routing_key_env",
            route.pagerduty_routing_key_env,
            "this route would post and never page",
        )
        for n, route in enumerate(config.alarm_routes)
        if route.pagerduty_routing_key_env
    ]
    if config.ops_pagerduty_routing_key_env:
        found.append(
            (
                "ops_pagerduty_routing_key_env",
                config.ops_pagerduty_routing_key_env,
                "a refused Slack token would page nobody",
            )
        )
    return found


def _escalating_routes(config: Config) -> list[str]:
    return [
        f"alarm_routes[{n}].escalate_after_min"
        for n, route in enumerate(config.alarm_routes)
        if route.escalate_after_min is not None
    ]


def _routing_keys(config: Config, is_set: Callable[[str], bool], result: Preflight) -> None:
    for key, env_name, silence in _routing_key_variables(config):
        if not is_set(env_name):
            result.refusals.append(f"{key}: {env_name} is not set or empty ({silence})")


class _Unreachable(Exception):
    pass


def _existing_names(client: WebClient) -> set[str]:
    names: set[str] = set()
    cursor = ""
    for _ in range(MAX_PAGES):
        answer = client.conversations_list(
            types="public_channel,private_channel",
            exclude_archived=True,
            limit=PAGE_SIZE,
            cursor=cursor or None,
        )
        names.update(str(c.get("name")) for c in answer.get("channels") or [])
        cursor = ((answer.get("response_metadata") or {}).get("next_cursor")) or ""
        if not cursor:
            return names
    raise _Unreachable(f"more than {MAX_PAGES * PAGE_SIZE} channels to list")


def _channels(config: Config, client: WebClient, result: Preflight) -> None:
    names: set[str] | None = None
    # Each channel's fault, if any: "does not exist in Slack", "is archived", or "".
    known: dict[str, str] = {}
    for key, channel in configured_channels(config):
        try:
            if channel not in known:
                if CHANNEL_ID.match(channel):
                    try:
                        answer = client.conversations_info(channel=channel)
                        # Slack still answers for an archived channel, but refuses every
                        # post there (`is_archived`), as a `#name` finds it in no list.
                        archived = bool((answer.get("channel") or {}).get("is_archived"))
                        known[channel] = ARCHIVED if archived else ""
                    except SlackApiError as exc:
                        if exc.response.get("error") not in NOT_FOUND:
                            raise
                        known[channel] = MISSING
                else:
                    if names is None:
                        names = _existing_names(client)
                    known[channel] = "" if channel.removeprefix("#") in names else MISSING
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "error")
            if error in {"invalid_auth", "not_authed", "account_inactive", "token_revoked"}:
                result.slack_token_refused = True
            result.warnings.append(
                f"Slack answered `{error}` while checking {key}: channels not checked "
                "(alarms are still taken in; messages wait in the outbox)"
            )
            return
        except (SlackClientError, OSError, _Unreachable) as exc:
            result.warnings.append(
                f"Slack is unreachable ({type(exc).__name__}): channels not checked "
                "(alarms are still taken in; messages wait in the outbox)"
            )
            return
        if known[channel]:
            log.warning("start-up check: %s: channel %s %s", key, channel, known[channel])
            result.refusals.append(f"{key}: {channel} {known[channel]}")


def _escalations(config: Config, result: Preflight) -> None:
    for key in _escalating_routes(config):
        result.refusals.append(
            f"{key}: PAGERDUTY_API_TOKEN is not set "
            "(opsbot escalates through PagerDuty's REST API: its reminders would "
            "promise an escalation that never comes)"
        )


def preflight(
    config: Config,
    *,
    routing_key_set: Callable[[str], bool],
    slack: WebClient | None,
    pagerduty_api: bool = True,
) -> Preflight:
    """Every refusal (key: why) and warning for `config` in this environment;
    `pagerduty_api`: whether opsbot has a PagerDuty REST API token."""
    result = Preflight()
    _routing_keys(config, routing_key_set, result)
    if not pagerduty_api:
        _escalations(config, result)
    if slack is None:
        result.warnings.append("SLACK_BOT_TOKEN is not set: channels not checked")
    else:
        _channels(config, slack, result)
    return result


def offline(config: Config) -> Preflight:
    """What `preflight` can say of `config` away from where opsbot runs: no refusal; the
    variables the running service needs, each with the keys that need it."""
    result = Preflight()
    for key, env_name, _ in _routing_key_variables(config):
        result.needs.setdefault(env_name, []).append(key)
    for key in _escalating_routes(config):
        result.needs.setdefault("PAGERDUTY_API_TOKEN", []).append(key)
    result.warnings.append("offline: channels not looked for in Slack")
    return result
