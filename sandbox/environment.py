"""The environment a process under test starts from: the shell's, without opsbot's own variables.

A developer's shell may carry a DATABASE_URL or a real SLACK_BOT_TOKEN; a test
or a benchmark that let it through would touch real systems. The names come
from `bot.settings.Settings` itself, so a new setting is kept out with no list
to update.
"""

from __future__ import annotations

import os

from bot.settings import Settings, variable_names


def settings_variables() -> tuple[str, ...]:
    """Every environment variable `Settings` reads, e.g. `DATABASE_URL`, `SLACK_BOT_TOKEN`,
    both of `AWS_REGION` and `AWS_DEFAULT_REGION`."""
    return tuple(
        variable
        for name, field in Settings.model_fields.items()
        for variable in variable_names(name, field)
    )


def clean_environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without `settings_variables()`, then `extra`."""
    dropped = set(settings_variables())
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(extra)
    return env
