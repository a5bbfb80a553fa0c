"""Finding an app environment by name, with an answer that lists what exists.

The name asked for was typed by someone: the answer shows it inert.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.apps.errors import AppNotFound
from bot.config import App, AppEnvironment, Config
from bot.slack_text import code


@dataclass(frozen=True)
class Target:
    app: str
    env: str
    settings: AppEnvironment

    @property
    def label(self) -> str:
        return f"{self.app}/{self.env}"


def _names(names: list[str]) -> str:
    return ", ".join(code(n) for n in sorted(names)) or "none configured"


def get_app_or_raise(config: Config, *, app: str) -> App:
    found = config.apps.get(app)
    if found is None:
        raise AppNotFound(f"Unknown app {code(app)}. Apps: {_names(list(config.apps))}.")
    return found


def get_target_or_raise(config: Config, *, app: str, env: str) -> Target:
    found = get_app_or_raise(config, app=app)
    settings = found.environments.get(env)
    if settings is None:
        known = _names(list(found.environments))
        raise AppNotFound(f"Unknown environment {code(env)} of {code(app)}. Environments: {known}.")
    return Target(app=app, env=env, settings=settings)
