"""The machinery of modals: opening one for a bare command, its submissions, its searches.

Opening: the bare command is acknowledged, then `views.open` is called with its
trigger_id at once (a trigger lasts three seconds; a form needs only the
configuration). An expired trigger is answered with the command's typed usage.

Submitting: the view's state is read as hostile input against the form
(bot/modals/state.py), claimed by its view id (bot/modals/submissions.py: it
acts once) and handed to the modal's `act`, the typed command's own path. Its
refusal is shown on a field (`response_action: errors`), its answer goes to the
command's response_url (kept in the view's private_metadata). The acknowledgement
must carry the field errors, so it waits for the work (in threads of its own)
until `slack_form_wait_s` (2 s) after the submission reached its listener
(reading and claiming it count); past that it closes the form and the outcome follows by
message. A view submitted again while its first submission is worked on is
answered as the first is (on this instance: the same answer; on another: an
error that keeps the form open for the first's answer); only a view that acted
closes at once. Work that raised may have done part of it: the view is never
acted on again. When the process stops, the submissions in hand end before the
lane behind acks does (bot/runtime.py); work in hand at a SIGKILL is not journaled.
What each modal is and does: handlers/modals.py.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from slack_bolt import Ack
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import commands
from bot.adapters.aws import AWS_ERRORS
from bot.adapters.slack import Hooks
from bot.apps.errors import NotAllowed, RightUnverifiable
from bot.home.service import FROM_HOME, click_via
from bot.modals import render
from bot.modals import state as view_state
from bot.modals.errors import FieldErrors
from bot.modals.forms import SELECT, Choice, Form
from bot.modals.submissions import Claim, SubmittedViews
from bot.rights.errors import RightMissing
from bot.runtime import Runtime
from handlers.command_text import slash_command
from handlers.replies import answer
from handlers.routing import Routes

log = logging.getLogger(__name__)

# Submissions worked on at once; more wait their turn (and are answered by message if late).
SUBMITTING_AT_ONCE = 4
VIEW_ID = re.compile(r"V[A-Z0-9]{1,40}")
CHANNEL_ID = re.compile(r"[CDG][A-Z0-9]{1,40}")
RESPONSE_URL_MAX = 500
WENT_WRONG = (
    "Something went wrong on opsbot's side (it is logged). Part of it may have been done: "
    "check before asking again."
)
# A second submission of a view whose first went wrong part-way: it is never acted on again.
UNSURE_AGAIN = (
    "This form's submission went wrong part-way (it is logged): check what was done, then "
    "open the form again if need be."
)
# A second submission of a view whose first is being worked on and not yet answered.
BEING_WORKED_ON = "This form was submitted twice: the first is being worked on, its answer follows."
NOT_CLAIMED = (
    "Something went wrong on opsbot's side (it is logged): nothing was done. Submit again."
)


@dataclass(frozen=True)
class Origin:
    """Where the form was opened (private_metadata): the channel and the command's
    response_url, or App Home (`home`), where there is no response_url and Home answers."""

    channel_id: str | None = None
    response_url: str | None = None
    home: bool = False

    def metadata(self) -> str:
        data = {"channel": self.channel_id, "response_url": self.response_url}
        return json.dumps({**data, "home": True} if self.home else data)

    @classmethod
    def parse(cls, raw: Any, *, hooks: Hooks) -> Origin:
        """Read back from a submission; anything unexpected is dropped, never trusted: a
        response_url not on Slack's `hooks` among it."""
        try:
            data = json.loads(raw) if isinstance(raw, str) and len(raw) <= 3000 else {}
        except ValueError:
            data = {}
        data = data if isinstance(data, dict) else {}
        channel, url = data.get("channel"), data.get("response_url")
        if not (isinstance(channel, str) and CHANNEL_ID.fullmatch(channel)):
            channel = None
        if not (isinstance(url, str) and len(url) <= RESPONSE_URL_MAX and hooks.holds(url)):
            url = None
        return cls(channel_id=channel, response_url=url, home=data.get("home") is True)


@dataclass(frozen=True)
class Submission:
    """A submitted form: who (Slack's signed user id), from where, and its checked values."""

    user_id: str
    origin: Origin
    values: dict[str, str | None]

    def text(self, name: str) -> str:
        return self.values.get(name) or ""


# A search field's answer to an `options` request: option values, or choices with
# descriptions.
Search = Callable[..., list[str] | list[Choice]]


@dataclass(frozen=True)
class Modal:
    """One modal: the typed command it stands for, its form, and what a submission does."""

    command: str  # "/deploy"
    verb: str | None  # the subcommand typed to open it ("declare"), None: the bare command
    build: Callable[[Runtime], Form]
    # The typed command's path; its answer for the person: text, a whole answer body (a
    # question with buttons), or None when the domain answered them.
    act: Callable[[Runtime, Submission], str | dict[str, Any] | None]
    refusals: tuple[type[Exception], ...]
    subject: str  # the field a refusal other than a missing right is shown on
    right: commands.Right = commands.Right.ANYONE  # what help calls the right it needs
    # The field a refusal for want of a right is shown on, by the right's name (NotAllowed's
    # `right`, e.g. the right to force on the field that asks to force); others: the first.
    right_fields: dict[str, str] = field(default_factory=dict)
    # Search fields (external_select) by name: (services, filled=, prefix=) -> option values
    # or choices, `filled` being the form's other fields as far as they are chosen and valid.
    searches: dict[str, Search] = field(default_factory=dict)

    def usage(self, naming: commands.Naming) -> str:
        return commands.command_named(self.command).usage_of(self.verb, naming)


# callback_id -> modal. A search field's name is the action_id its `options` requests are
# routed by: it must be unique across modals.

# -- submitting ----------------------------------------------------------------------------


class _Handoff:
    """A submission's answer, from the lane behind the ack to the listeners waiting for it:
    the one that claimed the view and any second submission of it on this instance."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Set once answered, or once the claiming listener stopped waiting (it closed the form).
        self._settled = threading.Event()
        self._abandoned = False
        self.errors: dict[str, str] | None = None

    def finish(self, errors: dict[str, str] | None) -> bool:
        """Hand over the answer; False when the listener no longer waits (answer by message)."""
        with self._lock:
            if self._abandoned:
                return False
            self.errors = errors
            self._settled.set()
            return True

    def wait(self, timeout_s: float) -> bool:
        """The claiming listener's wait: True with the answer in; False after the timeout
        (the form closes, and the work answers by message)."""
        if self._settled.wait(timeout_s):
            return True
        with self._lock:
            if self._settled.is_set():
                return True
            self._abandoned = True
            self._settled.set()
            return False

    def follow(self, timeout_s: float) -> tuple[bool, dict[str, str] | None]:
        """A second submission's wait: whether the first was answered within `timeout_s`, and
        the errors it was answered with (None: its form closed)."""
        settled = self._settled.wait(timeout_s)
        with self._lock:
            return settled, None if self._abandoned else self.errors


class _InFlight:
    """The submissions this instance is working on, by view id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handoffs: dict[str, _Handoff] = {}

    def join(self, view_id: str, handoff: _Handoff) -> _Handoff:
        """The handoff of the submission of `view_id` worked on here: `handoff` if none is."""
        with self._lock:
            return self._handoffs.setdefault(view_id, handoff)

    def leave(self, view_id: str, handoff: _Handoff) -> None:
        with self._lock:
            if self._handoffs.get(view_id) is handoff:
                del self._handoffs[view_id]


@dataclass(frozen=True)
class _Ids:
    """What the log names a submission by."""

    modal: str  # the callback_id
    view_id: str
    user_id: str

    def extra(self) -> dict[str, str]:
        return {"modal": self.modal, "view_id": self.view_id, "slack_user": self.user_id}


def _refusal_errors(modal: Modal, form: Form, exc: Exception) -> dict[str, str]:
    """Where a refusal shows: one for want of a right on that right's field (the first by
    default), naming the right it lacks; else on the subject."""
    text = render.plain_error(str(exc))
    cause = exc.__cause__
    if not (isinstance(exc, NotAllowed) or isinstance(cause, RightMissing)):
        return {modal.subject: text}
    right = exc.right if isinstance(exc, NotAllowed) else None
    if right is None and isinstance(cause, RightMissing):
        right = cause.right
    fields = {f.name for f in form.fields}
    where = modal.right_fields.get(right or "")
    where = where if where in fields else form.first
    if isinstance(exc, RightUnverifiable):  # nothing is missing: it says what went unchecked
        return {where: text}
    needs = right or commands.RIGHT_NAMES.get(modal.right, "a right")
    return {where: render.plain_error(f"Missing right ({needs}): {text}")}


def _submit(
    runtime: Runtime, modal: Modal, form: Form, submission: Submission, ids: _Ids
) -> tuple[str, dict[str, str] | None, str | dict[str, Any] | None]:
    """Run a submission: its outcome, its field errors (plain text), and its answer for the
    person as a message (mrkdwn)."""
    try:
        text = modal.act(runtime, submission)
    except FieldErrors as exc:
        return "refused", exc.errors, exc.mrkdwn()
    except modal.refusals as exc:
        return "refused", _refusal_errors(modal, form, exc), str(exc)
    except Exception:
        log.exception("the %s modal's submission failed", modal.command, extra=ids.extra())
        return "failed", {form.first: WENT_WRONG}, WENT_WRONG
    return "done", None, text


def _tail(runtime: Runtime, ids: _Ids, step: str, run: Callable[[], object]) -> None:
    """Run one step after a submission's work; a failure is logged and counted, never raised:
    the person's answer must not hang on it."""
    try:
        run()
    except Exception:
        runtime.metrics.after_ack_failures.inc()
        log.error(
            "a modal's submission: %s failed after its work",
            step,
            exc_info=True,
            extra={**ids.extra(), "step": step},
        )


def _settle_claim(runtime: Runtime, views: SubmittedViews, ids: _Ids, outcome: str) -> None:
    """Done: the view acted. Refused: nothing was done, it may be corrected and submitted
    again. Failed: part may have been done, so it is never acted on again."""
    if outcome == "done":
        _tail(runtime, ids, "marking the view acted", lambda: views.acted(ids.view_id))
    elif outcome == "refused":
        _tail(runtime, ids, "releasing the view", lambda: views.release(ids.view_id))
    else:
        _tail(runtime, ids, "marking the view unsure", lambda: views.unsure(ids.view_id))


def _claim(runtime: Runtime, views: SubmittedViews, ids: _Ids) -> Claim | None:
    """The view's claim (bot/modals/submissions.py); None when the database failed."""
    try:
        claim = views.claim(ids.view_id)
    except Exception:
        runtime.metrics.modal(ids.modal, "failed")
        log.exception("claiming a modal's submission failed", extra=ids.extra())
        return None
    if claim != "claimed":
        runtime.metrics.modal(ids.modal, "duplicate")
        log.info("view %s submitted again: %s", ids.view_id, claim, extra=ids.extra())
    return claim


def _not_claimed(form: Form, claim: Claim | None) -> dict[str, str] | None:
    """The answer to a submission that did not claim its view: None (close the form) once
    the view acted; else errors, which keep the form open (for the first's answer)."""
    if claim == "acted":
        return None
    if claim is None:
        return {form.first: NOT_CLAIMED}
    return {form.first: UNSURE_AGAIN if claim == "unsure" else BEING_WORKED_ON}


def _submitted(
    runtime: Runtime,
    views: SubmittedViews,
    pool: ThreadPoolExecutor,
    in_flight: _InFlight,
    callback_id: str,
    modal: Modal,
) -> Callable[..., None]:
    hooks = Hooks.of(runtime.settings.slack_api_url)

    def submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        # Bolt answers 404 when a listener has not acked within three seconds of its
        # start: the wait for the work is what is left of slack_form_wait_s after the claim.
        deadline = time.monotonic() + runtime.settings.slack_form_wait_s
        form = modal.build(runtime)
        user = body.get("user") or {}
        user_id = str(user.get("id") or "") if isinstance(user, dict) else ""
        view_id = str(view.get("id") or "")
        try:
            if not user_id or not VIEW_ID.fullmatch(view_id):
                raise FieldErrors({form.first: "This form cannot be read: open it again."})
            values = view_state.read(form, view.get("state"))
        except FieldErrors as exc:
            runtime.metrics.modal(callback_id, "invalid")
            log.info("%s modal refused: %s", modal.command, ", ".join(exc.errors))
            ack(response_action="errors", errors=exc.errors)
            return
        ids = _Ids(callback_id, view_id, user_id)
        origin = Origin.parse(view.get("private_metadata"), hooks=hooks)
        submission = Submission(user_id, origin, values)
        handoff = _Handoff()
        first = in_flight.join(view_id, handoff)
        if first is not handoff:
            # A double click reaching this instance twice: both answers are the first's, so
            # a refusal keeps the form open whichever answer Slack applies last.
            runtime.metrics.modal(callback_id, "duplicate")
            log.info("view %s submitted again while worked on here", view_id, extra=ids.extra())
            answered, errors = first.follow(max(0.0, deadline - time.monotonic()))
            if not answered:
                errors = {form.first: BEING_WORKED_ON}
            _ack(ack, errors)
            return
        claim = _claim(runtime, views, ids)
        if claim != "claimed":
            errors = _not_claimed(form, claim)
            handoff.finish(errors)
            in_flight.leave(view_id, handoff)
            _ack(ack, errors)
            return
        response_url = submission.origin.response_url

        def work() -> None:
            answered = False
            try:
                outcome, errors, text = _submit(runtime, modal, form, submission, ids)
                runtime.metrics.modal(callback_id, outcome)
                log.info("%s modal submitted: %s", modal.command, outcome, extra=ids.extra())
                _settle_claim(runtime, views, ids, outcome)
                waited = handoff.finish(errors)
                answered = True
                if not waited:
                    runtime.metrics.modal(callback_id, "late")
                if text and (outcome == "done" or not waited):
                    whole = text if isinstance(text, dict) else None
                    said = "" if isinstance(text, dict) else text
                    _tail(
                        runtime,
                        ids,
                        "answering by message",
                        lambda: answer(runtime, response_url=response_url, text=said, body=whole),
                    )
                if not waited and outcome != "done" and submission.origin.home and runtime.home:
                    home = runtime.home  # Home lists what its forms were refused
                    _tail(runtime, ids, "refreshing App Home", lambda: home.clicked(user_id))
            except Exception:  # a bug of ours: nobody reads the pool's futures
                runtime.metrics.after_ack_failures.inc()
                log.exception("a modal's submission failed after its work", extra=ids.extra())
            finally:
                if not answered:  # the form still gets an answer
                    handoff.finish({form.first: WENT_WRONG})
                in_flight.leave(view_id, handoff)

        pool.submit(work)
        _ack(ack, handoff.errors if handoff.wait(max(0.0, deadline - time.monotonic())) else None)

    return submitted


def _ack(ack: Ack, errors: dict[str, str] | None) -> None:
    """Errors keep the form open and show under its fields; a bare ack closes it."""
    if errors:
        ack(response_action="errors", errors=errors)
    else:
        ack()


# -- opening -------------------------------------------------------------------------------


def _opens(modal: Modal) -> Callable[[str], bool]:
    """The command typed bare (or with only the modal's verb)."""
    wanted = modal.verb or ""

    def bare(text: str) -> bool:
        return text.strip().lower() == wanted

    return bare


def opener(runtime: Runtime, callback_id: str, modal: Modal) -> Callable[..., None]:
    """A Bolt listener opening `modal` with the request's trigger (a bare command, a button)."""
    hooks = Hooks.of(runtime.settings.slack_api_url)

    def open_modal(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        # Bolt answers Slack when this returns (process_before_response): the answer does
        # not wait on views.open, which gets a thread of its own at once (the trigger
        # lasts three seconds, too short to wait behind other work in the pool).
        threading.Thread(
            target=open_now, args=(body, client), name="modal-open", daemon=True
        ).start()

    def open_now(body: dict[str, Any], client: WebClient) -> None:
        try:
            open_form(body, client)
        except Exception:
            runtime.metrics.modal(callback_id, "open_failed")
            log.exception("opening the %s modal failed", modal.command)

    def open_form(body: dict[str, Any], client: WebClient) -> None:
        usage = modal.usage(runtime.config.commands.naming)
        # The command's own fields, checked as a submission's metadata will be.
        command = {
            "channel": body.get("channel_id"),
            "response_url": body.get("response_url"),
            "home": click_via(body) == FROM_HOME,
        }
        origin = Origin.parse(json.dumps(command), hooks=hooks)
        form = modal.build(runtime)
        empty = next((f for f in form.fields if f.kind == SELECT and not f.choices), None)
        if empty is not None and not empty.optional:
            runtime.metrics.modal(callback_id, "open_failed")
            answer(
                runtime,
                response_url=origin.response_url,
                text=f"Nothing to choose as *{empty.label}*: the configuration has none for "
                f"this command.\n{usage}",
            )
            return
        try:
            client.views_open(
                trigger_id=str(body.get("trigger_id") or ""),
                view=runtime.config.commands.naming.named_body(
                    render.view(form, metadata=origin.metadata())
                ),
            )
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            expired = error == "expired_trigger_id"
            runtime.metrics.modal(callback_id, "expired" if expired else "open_failed")
            log.warning("views.open of the %s modal failed: %s", modal.command, error)
            lead = "" if expired else "The form could not be opened. "
            answer(
                runtime,
                response_url=origin.response_url,
                text=f"{lead}Type the command instead:\n{usage}",
            )
        except Exception:
            runtime.metrics.modal(callback_id, "open_failed")
            log.exception("views.open of the %s modal failed", modal.command)
            answer(
                runtime,
                response_url=origin.response_url,
                text=f"The form could not be opened. Type the command instead:\n{usage}",
            )
        else:
            runtime.metrics.modal(callback_id, "opened")
            log.info("%s modal opened", modal.command, extra={"slack_user": body.get("user_id")})

    return open_modal


# -- searching (block_suggestion) ----------------------------------------------------------


def _searcher(runtime: Runtime, modal: Modal, search: Search) -> Callable[..., None]:
    def options(ack: Ack, body: dict[str, Any]) -> None:
        typed = body.get("value")
        prefix = typed if isinstance(typed, str) else ""
        view = body.get("view")
        form = modal.build(runtime)
        filled = view_state.read_filled(form, view.get("state") if isinstance(view, dict) else None)
        found: list[str] | list[Choice] = []
        try:
            found = search(runtime, filled=filled, prefix=prefix)
        except (*modal.refusals, *AWS_ERRORS) as exc:
            log.warning("options for %s failed: %s", form.callback_id, type(exc).__name__)
        choices = [c if isinstance(c, Choice) else Choice(c, c) for c in found]
        ack(options=[render.option(choice) for choice in choices])

    return options


def register(routes: Routes, runtime: Runtime, modals: dict[str, Modal]) -> None:
    """Listen for `modals`: their bare commands, submissions and searches."""
    views = SubmittedViews(sessions=runtime.sessions, clock=runtime.clock)
    in_flight = _InFlight()
    # Not the after-ack lane: that lane yields to requests in flight, and the
    # submission's own request is in flight while it waits for its outcome.
    pool = ThreadPoolExecutor(SUBMITTING_AT_ONCE, thread_name_prefix="modal-submit")
    # A submission still worked on when the process stops may queue work behind acks (an
    # incident's channel): it ends before that lane stops.
    runtime.drains.append(pool.shutdown)
    for callback_id, modal in modals.items():
        opens = slash_command(
            routes, runtime.config.commands.naming, modal.command, when=_opens(modal)
        )
        opens(opener(runtime, callback_id, modal))
        routes.view(callback_id)(_submitted(runtime, views, pool, in_flight, callback_id, modal))
        for name, search in modal.searches.items():
            routes.options(name)(_searcher(runtime, modal, search))
