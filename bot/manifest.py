"""The Slack app manifest of opsbot, built for the URL the bot is served at.

`opsbot manifest --url https://opsbot.example.com` prints it; slack/manifest.yaml is a
copy built for https://opsbot.example.com (a test keeps the two in step). Paste it at
https://api.slack.com/apps -> Create New App -> From an app manifest.

Every request Slack sends (slash commands, button clicks, events) goes to one route,
/slack/events, where Bolt verifies the signature and dispatches. In Socket Mode
(`opsbot manifest --socket-mode`, SLACK_APP_TOKEN) there is no URL: Slack sends them
over the websocket opsbot opens.

The slash commands are named as the config's `commands:` section says
(bot/commands.py `Naming`): `/deploy` …, one `/ops`, or `/ops-deploy` ….

Scopes are only what the bot calls:
    chat:write, chat:write.public   post and update alarm, incident and deploy messages,
                                    also in public channels it was not invited to
    commands                        the slash commands of bot/commands.py
    app_mentions:read               "@opsbot who is on call?" answered in the thread
    users:read, users:read.email    map a Slack user to a PagerDuty user by email
    usergroups:read                 resolve on-call and approver user groups
    channels:read, groups:read      who is in an incident's channel (rights), and whether a
                                    channel is private (who may see its incidents)
    channels:history, groups:history
                                    read back its own recent messages after a crash, so a
                                    delivery that was sent but not recorded is not posted twice
    channels:manage                 create an incident's own channel, invite its responders,
                                    set its topic and archive it after the resolve
    groups:write                    ... the same for a private one (an incident of a private
                                    channel gets a private channel)
    pins:write                      pin the incident's summary in its channel
Two bot events are subscribed: app_mention, and app_home_opened (the Home tab,
published with views.publish, which needs no scope of its own); everything else
arrives as commands and buttons at the interactivity URL, and history is read
through the Web API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from bot.commands import COMMANDS, OWN, SEPARATE, Naming

EVENTS_PATH = "/slack/events"

BOT_EVENTS: tuple[str, ...] = ("app_mention", "app_home_opened")

BOT_SCOPES: tuple[str, ...] = (
    "app_mentions:read",
    "channels:history",
    "channels:manage",
    "channels:read",
    "chat:write",
    "chat:write.public",
    "commands",
    "groups:history",
    "groups:read",
    "groups:write",
    "pins:write",
    "usergroups:read",
    "users:read",
    "users:read.email",
)


def slash_commands(naming: Naming, url: str | None) -> list[dict[str, Any]]:
    """The manifest's slash commands: the table's, as `naming` names them."""
    where = {"url": url} if url else {}
    if naming.style == "single":
        hint = " | ".join(
            c.hint if c.name == OWN else f"{naming.selector(c.name)} …" for c in COMMANDS
        )
        return [
            {
                "command": naming.slack_name(OWN),
                **where,
                "description": "opsbot: incidents, on-call, deploys, flags and database roles",
                "usage_hint": hint,
                "should_escape": any(c.escaped for c in COMMANDS),
            }
        ]
    return [
        {
            "command": naming.slack_name(command.name),
            **where,
            "description": command.summary,
            "usage_hint": command.hint,
            "should_escape": command.escaped,
        }
        for command in COMMANDS
    ]


def build_manifest(
    base_url: str | None, naming: Naming = SEPARATE, *, socket_mode: bool = False
) -> dict[str, Any]:
    """The Slack app manifest for a bot served at base_url (https://host[:port][/prefix]).

    `socket_mode`: Slack sends everything over Socket Mode; base_url is not used.
    """
    request_url = None if socket_mode else _request_url(base_url)
    where = {"request_url": request_url} if request_url else {}
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": "opsbot",
            "description": "Alarms, incidents, deploys, flags and database roles from Slack",
            "background_color": "#1f2d3d",
        },
        "features": {
            "bot_user": {"display_name": "opsbot", "always_online": True},
            "app_home": {
                "home_tab_enabled": True,
                "messages_tab_enabled": False,
                "messages_tab_read_only_enabled": False,
            },
            "slash_commands": slash_commands(naming, request_url),
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "event_subscriptions": {**where, "bot_events": list(BOT_EVENTS)},
            # The options URL answers the modals' searches (external_select: ECR tags, flags).
            "interactivity": {
                "is_enabled": True,
                **where,
                **({"message_menu_options_url": request_url} if request_url else {}),
            },
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": False,
        },
    }


def _request_url(base_url: str | None) -> str:
    parts = urlsplit((base_url or "").strip())
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError(f"Slack needs an https:// URL for its requests, got {base_url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"the base URL must not have a query or fragment: {base_url!r}")
    return f"https://{parts.netloc}{parts.path.rstrip('/')}{EVENTS_PATH}"
