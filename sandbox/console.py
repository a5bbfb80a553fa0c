"""What the sandbox console shows and does, as plain data (sandbox/console_routes.py serves it).

Every action goes to the service the way the outside world would send it:
slash commands and button clicks as signed Slack requests to /slack/events,
alarms as signed SNS notifications to /sns, PagerDuty changes through the
emulator, whose webhooks then reach /pagerduty/webhooks.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from bot.commands import COMMANDS
from sandbox import ecr, slack_requests, world
from sandbox.alarms import alarm_message, alarm_subject
from sandbox.dev import Sandbox
from sandbox.slack import BOT_USER, Message

MAX_STORM = 200
EXAMPLES = (
    "/opsbot help",
    "/oncall",
    "/incident list",
    "/incident declare Checkout is slow for EU users --severity error",
    "/deploy checkout staging 1.5.0",
    "/deploy checkout prod 1.5.0",
    "/deploy status checkout prod",
    "/releases checkout",
    "/rollback checkout prod",
    "/flag list checkout prod",
    "/flag on checkout prod apple_pay",
    "/flag set checkout prod new_checkout_flow rollout_percent=50",
    "/flag off checkout staging NEW_CHECKOUT_FLOW",
    "/dbrole check checkout staging",
    "/dbrole provision checkout staging",
)


class ConsoleError(Exception):
    """Bad input from the console: the message says what."""


@dataclass
class Interaction:
    """One thing the console sent, and how the service answered."""

    id: int
    at: float
    kind: str  # command, action, alarm, pagerduty
    user: str
    summary: str
    status: int | None = None
    answer: str = ""


def _message(message: Message) -> dict[str, Any]:
    return {
        "ts": message.ts,
        "user": message.user,
        "text": message.text,
        "blocks": message.blocks,
        "edited": message.updates > 0,
        "updates": message.updates,
    }


class ConsoleActions:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.lock = threading.Lock()
        self.interactions: list[Interaction] = []
        self._ids = itertools.count(1)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="console-send")
        self._ecs_cache: tuple[float, list[dict[str, Any]]] = (0.0, [])

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- what is shown ---------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        slack = self.sandbox.slack
        with slack.lock:
            channels = []
            for channel_id, info in slack.channels.items():
                top = [m for m in slack.messages.get(channel_id, []) if m.thread_ts is None]
                items = []
                for message in top:
                    data = _message(message)
                    data["replies"] = [
                        _message(r)
                        for r in slack.messages.get(channel_id, [])
                        if r.thread_ts == message.ts
                    ]
                    items.append(data)
                channels.append({"id": channel_id, "name": info["name"], "messages": items})
            ephemerals = [{**asdict(e), "ts": e.id} for e in slack.ephemerals if not e.deleted]
            users = {u: info["name"] for u, info in slack.users.items()}
            users[BOT_USER] = "opsbot"
            groups = {g: info["handle"] for g, info in slack.usergroups.items()}
        with self.lock:
            activity = [asdict(i) for i in reversed(self.interactions[-50:])]
        return {
            "users": [
                {"id": u.slack_id, "name": u.name, "real_name": u.real_name, "role": u.role}
                for u in world.USERS
            ],
            "names": {"users": users, "groups": groups},
            "channels": channels,
            "ephemerals": ephemerals,
            "activity": activity,
            "incidents": self._incidents(),
            "services": self._services(),
            "alarms": [{"name": n, "about": about} for n, about in world.ALARMS],
            "commands": [
                {"command": c.name, "about": c.summary, "usage": c.hint} for c in COMMANDS
            ],
            "examples": list(EXAMPLES),
        }

    def _incidents(self) -> list[dict[str, Any]]:
        pd = self.sandbox.pagerduty
        if pd is None:
            return []
        with pd.lock:
            incidents = sorted(pd.incidents.values(), key=lambda i: -int(i["number"]))
            return [
                {
                    "id": i["id"],
                    "number": i["number"],
                    "title": i["title"],
                    "status": i["status"],
                    "urgency": i["urgency"],
                    "service": (i.get("service") or {}).get("summary"),
                    "created_at": i["created_at"],
                    "assignees": [a["assignee"]["summary"] for a in i.get("assignments") or []],
                    "acknowledged_by": [
                        (a.get("acknowledger") or {}).get("summary")
                        for a in i.get("acknowledgements") or []
                    ],
                    "escalation_level": i.get("escalation_level"),
                    "notes": len(pd.notes.get(i["id"], [])),
                }
                for i in incidents[:30]
            ]

    def _services(self) -> list[dict[str, Any]]:
        """What each environment's ECS service runs, read through the AWS API (cached 1 s)."""
        at, cached = self._ecs_cache
        if time.monotonic() - at < 1.0:
            return cached
        tags_by_digest = {ecr.image_digest(i.tags[0]): list(i.tags) for i in ecr.IMAGES}
        services: list[dict[str, Any]] = []
        ecs = self.sandbox.client("ecs")
        for env in world.ENVIRONMENTS:
            try:
                found = ecs.describe_services(cluster=env.cluster, services=[env.service])
                service = found["services"][0]
                task = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
            except Exception as exc:
                services.append({"environment": env.name, "error": type(exc).__name__})
                continue
            container = next(
                (
                    c
                    for c in task["taskDefinition"]["containerDefinitions"]
                    if c["name"] == world.CONTAINER
                ),
                task["taskDefinition"]["containerDefinitions"][0],
            )
            image = str(container.get("image", ""))
            digest = image.rsplit("@", 1)[-1] if "@" in image else ""
            services.append(
                {
                    "app": world.APP,
                    "environment": env.name,
                    "cluster": env.cluster,
                    "service": env.service,
                    "image": image,
                    "digest": digest,
                    "tags": tags_by_digest.get(digest, []),
                    "task_definition": service["taskDefinition"].rsplit("/", 1)[-1],
                    "running": service.get("runningCount"),
                    "desired": service.get("desiredCount"),
                    "deployments": [
                        {
                            "id": d.get("id"),
                            "status": d.get("status"),
                            "rollout": d.get("rolloutState"),
                            "running": d.get("runningCount"),
                            "desired": d.get("desiredCount"),
                            "failed": d.get("failedTasks"),
                            "task_definition": str(d.get("taskDefinition", "")).rsplit("/", 1)[-1],
                        }
                        for d in service.get("deployments", [])
                    ],
                    "events": [e["message"] for e in service.get("events", [])[:3]],
                }
            )
        self._ecs_cache = (time.monotonic(), services)
        return services

    # -- what is done ----------------------------------------------------------------

    def _user(self, user_id: str) -> world.DemoUser:
        user = next((u for u in world.USERS if u.slack_id == user_id), None)
        if user is None:
            raise ConsoleError(f"unknown user {user_id!r}")
        return user

    def _channel(self, channel: str) -> tuple[str, str]:
        slack = self.sandbox.slack
        with slack.lock:
            info = slack.channels.get(channel)
            if info is None:
                raise ConsoleError(f"unknown channel {channel!r}")
            return channel, str(info["name"])

    def _record(self, kind: str, user: str, summary: str) -> Interaction:
        with self.lock:
            interaction = Interaction(next(self._ids), time.time(), kind, user, summary)
            self.interactions.append(interaction)
            del self.interactions[:-200]
            return interaction

    def _post_slack(self, body: str) -> httpx.Response:
        headers = slack_requests.signed_headers(self.sandbox.secrets.slack_signing_secret, body)
        return httpx.post(
            f"{self.sandbox.service_url}/slack/events", content=body, headers=headers, timeout=30
        )

    def command(self, *, user_id: str, channel: str, text: str) -> dict[str, Any]:
        """Run `/command text` as `user_id` in `channel`, as Slack would send it."""
        user = self._user(user_id)
        channel_id, channel_name = self._channel(channel)
        text = text.strip()
        if not text.startswith("/") or len(text) < 2:
            raise ConsoleError("a slash command starts with /, e.g. /incident list")
        command, _, rest = text.partition(" ")
        response_url = self.sandbox.slack.response_url(channel=channel_id, user=user_id)
        body = slack_requests.slash_command(
            command,
            rest.strip(),
            user_id=user_id,
            user_name=user.name,
            channel_id=channel_id,
            channel_name=channel_name,
            response_url=response_url,
            trigger_id=self.sandbox.slack.trigger_id(user=user_id, channel=channel_id),
        )
        interaction = self._record("command", user.name, text)
        answer = self._post_slack(body)
        interaction.status = answer.status_code
        path = "/" + response_url.split("/", 3)[3]
        shown = self._show_answer(answer, channel_id=channel_id, user_id=user_id, path=path)
        if answer.status_code == 404:
            shown = f"{command} failed: this opsbot has no listener for it (HTTP 404)"
            self.sandbox.slack.add_ephemeral(
                channel=channel_id, user=user_id, text=shown, source="slack"
            )
        elif answer.status_code >= 400:
            shown = f"{command} failed: opsbot answered HTTP {answer.status_code}"
            self.sandbox.slack.add_ephemeral(
                channel=channel_id, user=user_id, text=shown, source="slack"
            )
        interaction.answer = shown
        return {"status": answer.status_code, "answer": shown}

    def _show_answer(
        self, answer: httpx.Response, *, channel_id: str, user_id: str, path: str
    ) -> str:
        """A command's immediate answer, shown as Slack shows it: to the caller, or to all."""
        if answer.status_code != 200 or not answer.content:
            return ""
        try:
            data = answer.json()
        except ValueError:
            data = {"text": answer.text}
        if not isinstance(data, dict):
            return ""
        text, blocks = str(data.get("text") or ""), data.get("blocks")
        if not text and not blocks:
            return ""
        slack = self.sandbox.slack
        if data.get("response_type") == "in_channel":
            slack.add_message(channel=channel_id, text=text, blocks=blocks)
        else:
            slack.add_ephemeral(
                channel=channel_id,
                user=user_id,
                text=text,
                blocks=blocks,
                source="ack",
                response_path=path,
            )
        return text

    def click(
        self,
        *,
        user_id: str,
        channel: str,
        action_id: str,
        value: str | None,
        block_id: str = "b",
        message_ts: str | None = None,
        ephemeral_id: str | None = None,
        selected_option: str | None = None,
    ) -> dict[str, Any]:
        """A click on a button (or a choice in a menu) of a message, as Slack sends it."""
        user = self._user(user_id)
        channel_id, channel_name = self._channel(channel)
        slack = self.sandbox.slack
        if ephemeral_id is not None:
            ephemeral = slack.find_ephemeral(ephemeral_id)
            if ephemeral is None:
                raise ConsoleError("that message is gone")
            message = {
                "type": "message",
                "ts": ephemeral.id,
                "text": ephemeral.text,
                "blocks": ephemeral.blocks,
            }
            ts = ephemeral.id
        else:
            found = next((m for m in slack.all_messages() if m.ts == message_ts), None)
            if found is None:
                raise ConsoleError("that message is gone")
            message = found.as_api()
            ts = found.ts
        response_url = slack.response_url(
            channel=channel_id,
            user=user_id,
            message_ts=None if ephemeral_id else ts,
            ephemeral_id=ephemeral_id,
        )
        body = slack_requests.block_action(
            action_id,
            value,
            user_id=user_id,
            user_name=user.name,
            channel_id=channel_id,
            channel_name=channel_name,
            message_ts=ts,
            response_url=response_url,
            block_id=block_id,
            selected_option=selected_option,
            message=message,
            is_ephemeral=ephemeral_id is not None,
            trigger_id=self.sandbox.slack.trigger_id(user=user_id, channel=channel_id),
        )
        label = selected_option or value or ""
        interaction = self._record("action", user.name, f"clicked {action_id} ({label})")
        answer = self._post_slack(body)
        interaction.status = answer.status_code
        if answer.status_code >= 400:
            interaction.answer = f"opsbot answered HTTP {answer.status_code}"
        return {"status": answer.status_code}

    def alarm(self, *, name: str, state: str, count: int = 1) -> dict[str, Any]:
        """Fire an alarm state change through /sns, signed like SNS; count > 1: a storm."""
        if state not in ("ALARM", "OK", "INSUFFICIENT_DATA"):
            raise ConsoleError("state must be ALARM, OK or INSUFFICIENT_DATA")
        if not 1 <= count <= MAX_STORM:
            raise ConsoleError(f"a storm has 1 to {MAX_STORM} alarms")
        name = name.strip()
        if not name or len(name) > 200:
            raise ConsoleError("an alarm needs a name of at most 200 characters")
        names = [name] if count == 1 else [f"{name}-{n:03d}" for n in range(1, count + 1)]
        summary = f"{state}: {name}" if count == 1 else f"{state} storm: {count} alarms {name}-NNN"
        interaction = self._record("alarm", "CloudWatch", summary)
        descriptions = dict(world.ALARMS)
        if count == 1:
            status = self._send_alarm(name, state, descriptions.get(name))
            interaction.status = status
            return {"status": status}
        futures = [
            self._pool.submit(self._send_alarm, n, state, descriptions.get(name)) for n in names
        ]

        def summarise() -> None:
            statuses = [f.result() for f in futures]
            interaction.status = max(statuses)
            interaction.answer = f"{statuses.count(200)} of {count} accepted"

        self._pool.submit(summarise)
        return {"status": 202, "alarms": len(names)}

    def _send_alarm(self, name: str, state: str, description: str | None) -> int:
        signer = self.sandbox.signer
        assert signer is not None
        message = alarm_message(
            name=name,
            state=state,
            account=world.ACCOUNT,
            region=world.REGION,
            description=description,
        )
        envelope = signer.notification(
            message, topic_arn=world.TOPIC_ARN, subject=alarm_subject(name, state, world.REGION)
        )
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": envelope["Type"],
            "x-amz-sns-message-id": envelope["MessageId"],
            "x-amz-sns-topic-arn": envelope["TopicArn"],
        }
        try:
            answer = httpx.post(
                f"{self.sandbox.service_url}/sns",
                content=json.dumps(envelope),
                headers=headers,
                timeout=30,
            )
        except httpx.HTTPError:
            return 599
        return answer.status_code

    def pagerduty(self, *, incident_id: str, status: str, user_id: str) -> dict[str, Any]:
        """Acknowledge or resolve in the PagerDuty app, as the chosen person."""
        pd = self.sandbox.pagerduty
        assert pd is not None
        if status not in ("acknowledged", "resolved"):
            raise ConsoleError("status must be acknowledged or resolved")
        user = self._user(user_id)
        with pd.lock:
            if incident_id not in pd.incidents:
                raise ConsoleError(f"no PagerDuty incident {incident_id}")
            pd.act_in_app(incident_id, status=status, user_id=user.pagerduty_id)
        interaction = self._record(
            "pagerduty", user.name, f"{status} {incident_id} in the PagerDuty app"
        )
        interaction.status = 200
        return {"status": 200}
