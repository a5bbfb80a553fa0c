"""/deploy, /rollback and /releases: parse, hand over to bot/deploys, answer.

Each command is acknowledged at once (Slack's three seconds) and worked on
after the ack, behind it (bot/after_ack.py); the answer goes to the command's
response_url through the outbox. The public side (announcements, progress,
confirmations) goes to the environment's release channel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack

from bot import commands
from bot.apps.errors import AppError
from bot.changes import guard
from bot.deploys import locks, queries, render
from bot.deploys.cli import FORCE_REASON_MAX
from bot.deploys.errors import DeployError
from bot.deploys.models import DEPLOY, ROLLBACK
from bot.deploys.plans import Request
from bot.runtime import Runtime
from handlers.command_text import Usage, command_words, echoed, parse_or_usage, slash_command
from handlers.replies import answer_after_ack
from handlers.routing import Routes

# The most deployments `/deploy history` lists, however many are asked for.
HISTORY_MAX = 50
# The longest reason `/deploy lock` takes: its notice shows no more (bot/deploys/locks.py).
LOCK_REASON_MAX = 500


@dataclass(frozen=True)
class Command:
    verb: str  # deploy | rollback | status | history | lock | unlock | releases | help
    app: str | None = None
    env: str | None = None
    tag: str | None = None
    count: int | None = None
    reason: str | None = None
    force_reason: str | None = None
    deployment_id: int | None = None


def _split_force(words: list[str]) -> tuple[list[str], str | None]:
    """Everything after --force is its reason (quoted or not)."""
    for index, word in enumerate(words):
        if word == "--force" or word.startswith("--force="):
            rest = words[index + 1 :]
            if word.startswith("--force="):
                rest = [word.split("=", 1)[1], *rest]
            reason = " ".join(rest).strip()
            if not reason:
                raise Usage('`--force` needs a reason: `--force "hotfix for INC-42"`.')
            if len(reason) > FORCE_REASON_MAX:
                raise Usage(
                    f"The `--force` reason is too long ({FORCE_REASON_MAX} characters at most)."
                )
            return words[:index], reason
    return words, None


def parse_deploy(text: str) -> Command:
    words, force = _split_force(command_words(text))
    if not words or words[0] == "help":
        return Command("help")
    verb = words[0]
    if verb in ("status", "history", "lock", "unlock"):
        if force:
            raise Usage(f"`--force` does not apply to `/deploy {verb}`.")
        if len(words) < 3:
            raise Usage(
                f"`/deploy {verb} &lt;app&gt; &lt;env&gt;` needs an app and an environment."
            )
        app, env, rest = words[1], words[2], words[3:]
        if verb == "history":
            return Command(verb, app=app, env=env, count=_history_count(rest))
        if verb == "lock":
            if not rest:
                raise Usage("Say why: `/deploy lock &lt;app&gt; &lt;env&gt; &lt;reason&gt;`.")
            reason = " ".join(rest)
            if len(reason) > LOCK_REASON_MAX:
                raise Usage(f"The reason is too long ({LOCK_REASON_MAX} characters at most).")
            return Command(verb, app=app, env=env, reason=reason)
        if rest:
            raise Usage(f"`/deploy {verb} &lt;app&gt; &lt;env&gt;` takes nothing more.")
        return Command(verb, app=app, env=env)
    if len(words) != 3:
        raise Usage('`/deploy &lt;app&gt; &lt;env&gt; &lt;tag&gt; [--force "&lt;reason&gt;"]`.')
    return Command(DEPLOY, app=words[0], env=words[1], tag=words[2], force_reason=force)


def _history_count(rest: list[str]) -> int | None:
    """How many deployments `/deploy history` is asked for; None when not said.

    A number of ten digits at most (`commands.typed_id`): int() of thousands of
    digits raises, and no history is that long anyway.
    """
    if not rest:
        return None
    count = commands.typed_id(rest[0]) if len(rest) == 1 and rest[0].isdigit() else None
    if count is None:
        raise Usage(
            "`/deploy history &lt;app&gt; &lt;env&gt; [n]`: n is a number of deployments "
            f"(at most {HISTORY_MAX} are shown)."
        )
    return count


def parse_rollback(text: str) -> Command:
    words, force = _split_force(command_words(text))
    if not words or words[0] == "help":
        return Command("help")
    if len(words) not in (2, 3):
        raise Usage(
            '`/rollback &lt;app&gt; &lt;env&gt; [deployment-id] [--force "&lt;reason&gt;"]`.'
        )
    deployment_id = None
    if len(words) == 3:
        number = words[2].lstrip("#")
        if not (number.isascii() and number.isdigit()):
            raise Usage("The deployment id is a number, as `/deploy history` shows.")
        deployment_id = commands.typed_id(number)
        if deployment_id is None:  # past any row id: asking the database would fail
            raise Usage(f"There is no deployment `#{number[:20]}`.")
    return Command(
        ROLLBACK, app=words[0], env=words[1], deployment_id=deployment_id, force_reason=force
    )


def parse_releases(text: str) -> Command:
    words = command_words(text)
    if not words or words[0] == "help" or len(words) != 1:
        return Command("help")
    return Command("releases", app=words[0])


def _ack_text(command: Command) -> str | None:
    if command.verb == DEPLOY:
        where = echoed(f"{command.app}/{command.env}")
        return f":hourglass_flowing_sand: Checking {echoed(command.tag or '')} for {where}…"
    if command.verb == ROLLBACK:
        where = echoed(f"{command.app}/{command.env}")
        return f":hourglass_flowing_sand: Checking a rollback of {where}…"
    return None


def run(
    runtime: Runtime, command: Command, *, user_id: str, channel_id: str | None
) -> str | dict[str, Any]:
    """Do what a parsed command asks; return the answer for the person who typed it.

    A deploy or rollback while an incident is open on its app environment is
    asked about first (bot/changes/guard.py): the answer is then a question.
    """
    knobs = runtime.config.deploys
    if command.verb in (DEPLOY, ROLLBACK):
        assert command.app and command.env
        request = Request(
            app=command.app,
            env=command.env,
            actor=user_id,
            kind=command.verb,
            tag=command.tag,
            rollback_of=command.deployment_id,
            force_reason=command.force_reason,
            channel=channel_id,
        )
        asked = guard.deploy(runtime, request)
        return asked.body if isinstance(asked, guard.Question) else asked
    if command.verb == "status":
        assert command.app and command.env
        view = queries.status(runtime, app=command.app, env=command.env)
        return str(render.status_message(view)["text"])
    if command.verb == "history":
        assert command.app and command.env
        count = min(command.count or knobs.history_size, HISTORY_MAX)
        rows = queries.history(runtime, app=command.app, env=command.env, limit=count)
        return str(render.history_message(command.app, command.env, rows)["text"])
    if command.verb == "lock":
        assert command.app and command.env
        return locks.lock(
            runtime,
            app=command.app,
            env=command.env,
            actor=user_id,
            reason=command.reason or "",
        )
    if command.verb == "unlock":
        assert command.app and command.env
        return locks.unlock(runtime, app=command.app, env=command.env, actor=user_id)
    if command.verb == "releases":
        assert command.app
        return str(render.releases_message(queries.releases(runtime, app=command.app))["text"])
    return commands.usage("/deploy", runtime.config.commands.naming)


def _listener(runtime: Runtime, parse: Callable[[str], Command], name: str) -> Callable[..., None]:
    naming = runtime.config.commands.naming
    usage = commands.usage(name, naming)

    def listen(ack: Ack, command: dict[str, Any]) -> None:
        # Bolt answers Slack as soon as ack() is called; the work is queued behind
        # it (bot/after_ack.py). (Lazy listeners would deep-copy the request
        # context, TLS-configured client included.)
        parsed = parse_or_usage(ack, command.get("text"), parse, usage)
        if parsed is None:
            return
        text = _ack_text(parsed)
        if text:
            ack(text=text)
        else:
            ack()
        answer_after_ack(
            runtime,
            command,
            lambda user_id, channel_id: run(
                runtime, parsed, user_id=user_id, channel_id=channel_id
            ),
            refusals=(AppError, DeployError),
            hint=f"Check `{naming.render('/deploy status')}`.",
        )

    return listen


def register(routes: Routes, runtime: Runtime) -> None:
    for name, parse in (
        ("/deploy", parse_deploy),
        ("/rollback", parse_rollback),
        ("/releases", parse_releases),
    ):
        slash_command(routes, runtime.config.commands.naming, name)(_listener(runtime, parse, name))
