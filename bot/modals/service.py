"""The five forms opsbot opens, built from the configuration, and the searches that fill them.

The forms need nothing but the configuration, so `views.open` leaves at once
(a trigger lasts three seconds); image tags and flag names, which come from
AWS and may be many, are searched when the person types (`options` requests)
within the app environment chosen in the same form.

An AppConfig flag is suggested from the version a change is made from (the
deployed one, as `/flag set` and `/flag list` read it), with its state there
and any newer hosted version that is not deployed. A search comes at every
keystroke and Slack waits three seconds for it, so what ECR and AppConfig hold
is read once per repository or app environment for `SUGGESTIONS_TTL` (a deploy
or a change reads it again itself).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from bot.adapters import ecr
from bot.adapters.aws import AwsClients
from bot.apps.registry import get_target_or_raise
from bot.clock import Clock
from bot.config import AppConfigFlags, Config
from bot.flags import appconfig, ssm
from bot.flags import render as flag_render
from bot.flags.document import differences, state_of
from bot.flags.flows import flags_or_raise
from bot.flags.requests import OFF, ON, SET
from bot.incidents.actions import SEVERITIES
from bot.maintenance.errors import BadWindow
from bot.maintenance.requests import (
    MAX_GLOB,
    MAX_REASON,
    WindowRequest,
    minutes_of,
    parse_window,
    reason_of,
    starts_at_of,
)
from bot.modals.errors import FieldErrors
from bot.modals.forms import LONG_TEXT, SEARCH, SELECT, TEXT, Choice, Field, Form
from bot.modals.render import OPTION_TEXT_MAX, OPTIONS_MAX, plain_error
from bot.slack_text import clip, unescape

if TYPE_CHECKING:
    from bot.apps.services import Services

log = logging.getLogger(__name__)

T = TypeVar("T")

DEPLOY = "opsbot.deploy"
FLAG = "opsbot.flag"
DBROLE = "opsbot.dbrole"
DECLARE = "opsbot.incident_declare"
SILENCE = "opsbot.silence"

# Field names: a form's block_id and action_id. The two searches have names of
# their own, as an `options` request is routed by its action_id alone.
TARGET = "target"
TAG = "modal_tag"
FORCE = "force_reason"
FLAG_NAME = "modal_flag"
FLAG_VERB = "verb"
ATTRIBUTES = "attributes"
DBROLE_VERB = "verb"
SUMMARY = "summary"
SEVERITY = "severity"
ROUTE = "route"
SILENCE_ROUTE = "silence_route"
SILENCE_GLOB = "silence_glob"
STARTS = "starts"
LASTS = "lasts"
REASON = "reason"
# A window's lengths to choose from (the typed command takes any duration).
LENGTHS = {
    "30m": "30 minutes",
    "1h": "1 hour",
    "2h": "2 hours",
    "4h": "4 hours",
    "8h": "8 hours",
    "12h": "12 hours",
    "1d": "1 day",
    "3d": "3 days",
}
# The longest prefix a search takes (a tag is at most 128 characters).
PREFIX_MAX = 128
# How long a search reuses what it read of an app environment's image tags or flags.
SUGGESTIONS_TTL = timedelta(seconds=15)
# How long a search waits for the same read another search started; Slack waits three
# seconds for the answer, so after this it answers with what was read before, if anything.
READ_WAIT_S = 2.5
# The most tagged images a tag search reads: pages stop once this many are read.
TAGS_READ = 1000
# The most of a flag's state in the newer, undeployed version an option's description shows.
NEWER_STATE_MAX = 20


def _targets(config: Config, *, flags: bool = False, dbrole: bool = False) -> tuple[Choice, ...]:
    """Every app environment as one choice (`api/prod`), those with flags or roles if asked."""
    choices = []
    for app_name, app in sorted(config.apps.items()):
        for env_name, env in app.environments.items():
            if (flags and env.flags is None) or (dbrole and env.dbrole is None):
                continue
            label = f"{app_name} / {env_name}"
            choices.append(Choice(value=f"{app_name}/{env_name}", label=label))
    return tuple(choices[:OPTIONS_MAX])


def _target_field(config: Config, **only: bool) -> Field:
    return Field(
        TARGET,
        "App environment",
        SELECT,
        choices=_targets(config, **only),
        placeholder="Choose an app environment",
    )


def split_target(value: str) -> tuple[str, str]:
    """`api/prod` -> (`api`, `prod`): a target choice's app and environment."""
    app, _, env = value.partition("/")
    return app, env


def deploy_form(config: Config) -> Form:
    return Form(
        callback_id=DEPLOY,
        title="Deploy",
        submit="Deploy",
        fields=(
            _target_field(config),
            Field(
                TAG,
                "Image tag",
                SEARCH,
                max_length=128,
                placeholder="Type to search the app's ECR tags",
                hint="Choose the app environment first: its ECR repository is searched.",
            ),
            Field(
                FORCE,
                "Force, because…",
                TEXT,
                optional=True,
                max_length=500,
                hint="Only to override a freeze, a scan or a stuck lock, as `--force` does.",
            ),
        ),
    )


def flag_form(config: Config) -> Form:
    return Form(
        callback_id=FLAG,
        title="Feature flag",
        submit="Change",
        fields=(
            _target_field(config, flags=True),
            Field(
                FLAG_NAME,
                "Flag",
                SEARCH,
                max_length=128,
                placeholder="Type to search the flags",
                hint="Choose the app environment first: its flags are listed.",
            ),
            Field(
                FLAG_VERB,
                "Change",
                SELECT,
                choices=(
                    Choice(ON, "Turn on"),
                    Choice(OFF, "Turn off"),
                    Choice(SET, "Set attributes"),
                ),
                initial=ON,
            ),
            Field(
                ATTRIBUTES,
                "Attributes (for Set)",
                TEXT,
                optional=True,
                max_length=1000,
                placeholder="rollout_percent=25 variant=b",
            ),
        ),
    )


def dbrole_form(config: Config) -> Form:
    return Form(
        callback_id=DBROLE,
        title="Database roles",
        submit="Go",
        fields=(
            _target_field(config, dbrole=True),
            Field(
                DBROLE_VERB,
                "What to do",
                SELECT,
                choices=(
                    Choice("check", "Check (changes nothing)"),
                    Choice("provision", "Provision (create or repair)"),
                ),
                initial="check",
            ),
        ),
    )


def declare_form(config: Config) -> Form:
    paging = [route for route in config.alarm_routes if route.pagerduty_routing_key_env]
    routes = tuple(Choice(route.label, route.label) for route in paging)[:OPTIONS_MAX]
    return Form(
        callback_id=DECLARE,
        title="Declare an incident",
        submit="Declare",
        fields=(
            Field(SUMMARY, "What is wrong", LONG_TEXT, max_length=1000),
            Field(
                SEVERITY,
                "Severity",
                SELECT,
                choices=tuple(Choice(s, s.capitalize()) for s in SEVERITIES),
                optional=True,
                hint="Empty: the route's own severity.",
            ),
            Field(
                ROUTE,
                "Page through route",
                SELECT,
                choices=routes,
                optional=True,
                hint="Empty: the configured declare route.",
            ),
        ),
    )


def silence_form(config: Config) -> Form:
    routes = tuple(Choice(r.label, r.label) for r in config.alarm_routes)[:OPTIONS_MAX]
    return Form(
        callback_id=SILENCE,
        title="Maintenance window",
        submit="Hold pages",
        intro=(
            "Alarms the window covers are posted and recorded but not paged; whatever "
            "still fires when it ends is paged then."
        ),
        fields=(
            Field(
                SILENCE_ROUTE,
                "Route",
                SELECT,
                choices=routes,
                optional=True,
                hint="Every alarm of this route; or name the alarms below instead.",
            ),
            Field(
                SILENCE_GLOB,
                "Or alarms named",
                TEXT,
                optional=True,
                max_length=MAX_GLOB,
                placeholder="prod-db-*",
            ),
            Field(
                STARTS,
                "Starts",
                TEXT,
                optional=True,
                max_length=40,
                placeholder="now",
                hint="Empty: now. Or `in 30m`, `22:00` or `2026-12-05T22:00` (UTC).",
            ),
            Field(
                LASTS,
                "For",
                SELECT,
                choices=tuple(Choice(value, label) for value, label in LENGTHS.items()),
                initial="1h",
            ),
            Field(REASON, "Reason", LONG_TEXT, max_length=MAX_REASON),
        ),
    )


def silence_request(values: Mapping[str, str | None], *, now: datetime) -> WindowRequest:
    """A submitted silence form as the typed command's request.

    FieldErrors name the field at fault.
    """
    route = values.get(SILENCE_ROUTE) or ""
    glob = (values.get(SILENCE_GLOB) or "").strip()
    if bool(route) == bool(glob):
        say = "Choose a route or name the alarms: one of the two."
        raise FieldErrors({SILENCE_ROUTE: say, SILENCE_GLOB: say})
    target_field = SILENCE_ROUTE if route else SILENCE_GLOB
    target = route or glob
    # The target alone first, so that its error shows on its own field.
    _on_field(target_field, lambda: parse_window([target, "for", "1m", "reason", "-"], now=now))
    # Each field parsed on its own: text in one is never read as the command's other words.
    starts_at = _on_field(STARTS, lambda: starts_at_of((values.get(STARTS) or "").split(), now=now))
    minutes = _on_field(LASTS, lambda: minutes_of(values.get(LASTS) or ""))
    reason = _on_field(REASON, lambda: reason_of((values.get(REASON) or "").split()))
    return WindowRequest(target=target, starts_at=starts_at, minutes=minutes, reason=reason)


def _on_field(field: str, parse: Callable[[], T]) -> T:
    """What `parse` gives; its BadWindow as a FieldErrors on `field`, in plain text (and
    as the domain's mrkdwn for a message)."""
    try:
        return parse()
    except BadWindow as exc:
        raise FieldErrors({field: plain_error(str(exc))}, message=str(exc)) from exc


def _matching(names: list[str], prefix: str) -> list[str]:
    wanted = prefix.strip().lower()
    return [name for name in dict.fromkeys(names) if name.lower().startswith(wanted)][:OPTIONS_MAX]


def search_tags(services: Services, *, filled: dict[str, str], prefix: str) -> list[str]:
    """The tags of the chosen target's ECR repository that start with `prefix`, newest first."""
    if TARGET not in filled:
        return []
    app, env = split_target(filled[TARGET])
    repository = get_target_or_raise(services.config, app=app, env=env).settings.repository
    tags = _recent(services).read(
        ("ecr", repository),
        lambda: [
            tag
            for image in ecr.recent_images(
                services.aws.get("ecr"), repository=repository, limit=TAGS_READ, stop_at_limit=True
            )
            for tag in image.tags
        ],
    )
    return _matching(tags or [], prefix[:PREFIX_MAX])


class _Recent:
    """What a search read of AWS, by what it read, kept for `SUGGESTIONS_TTL`: a search
    comes at each keystroke, and Slack waits three seconds for its answer.

    One read per key at a time: the keystrokes that come while it runs wait for it
    rather than each reading every page again.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._read: dict[tuple[str, ...], tuple[datetime, Any]] = {}
        self._reading: dict[tuple[str, ...], threading.Event] = {}
        self._lock = threading.Lock()

    def read(self, key: tuple[str, ...], read: Callable[[], T]) -> T | None:
        """What was read for `key` lately, else what `read` gives now.

        None: another search's read of `key` did not end within `READ_WAIT_S` (or
        failed) and nothing was read before.
        """
        now = self.clock.now()
        with self._lock:
            hit = self._read.get(key)
            # A clock set back makes the age negative: read again rather than trust it.
            if hit is not None and timedelta(0) <= now - hit[0] < SUGGESTIONS_TTL:
                return cast(T, hit[1])
            other = self._reading.get(key)
            if other is None:
                reading = self._reading[key] = threading.Event()
        if other is not None:
            return cast(T | None, self._wait(key, other))
        try:
            value = read()
            with self._lock:
                self._read[key] = (now, value)
            return value
        finally:
            with self._lock:
                del self._reading[key]
            reading.set()

    def _wait(self, key: tuple[str, ...], reading: threading.Event) -> Any:
        """What the read in progress gives, or what was read before once the wait is over."""
        ended = reading.wait(READ_WAIT_S)
        with self._lock:
            hit = self._read.get(key)
        if not ended:
            log.info(
                "search of %s: a read in progress did not end within %.1f s; answered with %s",
                "/".join(key),
                READ_WAIT_S,
                "what was read before" if hit is not None else "nothing",
                extra={"search": "/".join(key)},
            )
        return None if hit is None else hit[1]


# One per set of AWS clients (a runtime's), gone with it.
_RECENT: weakref.WeakKeyDictionary[AwsClients, _Recent] = weakref.WeakKeyDictionary()
_RECENT_LOCK = threading.Lock()


def _recent(services: Services) -> _Recent:
    with _RECENT_LOCK:
        return _RECENT.setdefault(services.aws, _Recent(services.clock))


def flag_choices(services: Services, *, filled: dict[str, str], prefix: str) -> list[Choice]:
    """The chosen target's flags whose names start with `prefix`, each described by its state.

    AppConfig: the flags and states of the version a change is made from (the
    deployed one; never deployed: the newest), naming a newer hosted version
    that is not deployed. SSM: each parameter's value (not its last writer).
    """
    if TARGET not in filled:
        return []
    app, env = split_target(filled[TARGET])
    flags = flags_or_raise(get_target_or_raise(services.config, app=app, env=env))
    if isinstance(flags, AppConfigFlags):
        current = _recent(services).read(
            ("appconfig", flags.application, flags.environment, flags.profile),
            lambda: appconfig.read_current(services.aws.get("appconfig"), flags),
        )
        choices = _appconfig_choices(current) if current is not None else []
    else:
        service_name = flags.service_name
        parameters = _recent(services).read(
            ("ssm", service_name),
            lambda: ssm.list_flags(
                services.aws.get("ssm"), service_name=service_name, with_writers=False
            ),
        )
        choices = [Choice(p.name, p.name, description=p.value) for p in parameters or []]
    by_name = {choice.value: choice for choice in choices}
    return [by_name[name] for name in _matching(sorted(by_name), prefix[:PREFIX_MAX])]


def _appconfig_choices(current: appconfig.Current) -> list[Choice]:
    shown = current.shown
    newer = current.newest if current.undeployed else None
    changed = (
        {str(d["flag"]): d for d in differences(shown.document, newer.document)} if newer else {}
    )
    choices = []
    for flag in shown.document.flags():
        where = _where(current, changed.get(flag.key))
        state = clip(_plain_state(state_of(flag)), max(OPTION_TEXT_MAX - len(where) - 3, 10))
        choices.append(Choice(flag.key, flag.key, description=f"{state} ({where})"))
    return choices


def _where(current: appconfig.Current, difference: dict[str, Any] | None) -> str:
    """Which version an option's state is of, and what a newer undeployed one does to the flag.

    Short: an option's description is one line of 75 characters.
    """
    shown = current.shown
    if current.deployed is None:
        return f"v{shown.number}; nothing deployed yet"
    where = f"deployed v{shown.number}"
    if not current.undeployed:
        return where
    newest = current.newest.number
    if difference is None:
        return f"{where}; v{newest} not deployed"
    was, now = difference.get("from"), difference.get("to")
    if now is None:
        there = "removed"
    elif now == was:
        there = "definition changed"
    else:
        there = clip(_plain_state(now), NEWER_STATE_MAX)
    return f"{where}; v{newest}, not deployed: {there}"


def _plain_state(state: dict[str, Any]) -> str:
    """A flag's state as the flags domain words it (`off · rollout_percent=25`), as plain text."""
    return unescape(flag_render.state_text(state))
