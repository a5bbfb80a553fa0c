"""Logging set-up: every configured secret redacted, every message kept on one line."""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable
from types import TracebackType

from bot.observability.json_logs import JsonLines

REDACTED = "[redacted]"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Line breaks and other control characters (tab aside) a message may carry from outside.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")

# Credentials in a URL (scheme://user:password@host) and in a libpq connection
# string or query (password=...), whatever their value: a library's error
# message may quote a URL or a connection string that no configured secret names.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")
_PASSWORD_PARAMETER = re.compile(
    r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'\"&,)]+)", re.IGNORECASE
)
# A Slack response_url or incoming webhook is a bearer credential: whoever holds one
# may post in its channel. Its path after the kind is the secret.
_SLACK_HOOK = re.compile(r"(hooks\.slack(?:-gov)?\.com/[A-Za-z]+/)[^\s\"'<>]+")


class RedactSecrets(logging.Filter):
    """Replaces secret values in messages and tracebacks before any handler writes them.

    Configured secrets are replaced wherever they appear; so is any password in
    a URL's credentials or in a `password=` parameter, and the path of a Slack
    response_url or webhook.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self._formatter = logging.Formatter()

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if "://" in text:
            text = _URL_PASSWORD.sub(rf"\g<1>{REDACTED}@", text)
        if "assword" in text or "ASSWORD" in text:
            text = _PASSWORD_PARAMETER.sub(rf"\g<1>{REDACTED}", text)
        if "hooks.slack" in text:
            text = _SLACK_HOOK.sub(rf"\g<1>{REDACTED}", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self.redact(self._formatter.formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class OneLine(logging.Filter):
    """Writes a control character in a message as its escape (`\\n`, `\\x1b`).

    A TopicArn, an event id or a name from outside cannot then start a line
    of its own that reads as opsbot's. Tracebacks are left as they are.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _CONTROL.search(message):
            record.msg = _CONTROL.sub(lambda m: repr(m.group())[1:-1], message)
            record.args = None
        return True


def configure_logging(level: str, secrets: Iterable[str], *, json_lines: bool = False) -> None:
    """Log to stderr at `level`, secrets redacted; as JSON lines with `json_lines`."""
    redactor = RedactSecrets(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines(redactor.redact) if json_lines else logging.Formatter(FORMAT))
    handler.addFilter(redactor)
    handler.addFilter(OneLine())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Chatty libraries stay at WARNING unless debugging. The HTTP stacks would log
    # every call's URL at INFO, and a response_url is a capability.
    http = ("urllib3", "httpx", "httpcore", "httpx2", "httpcore2")
    for name in ("botocore", *http, "apscheduler", "slack_bolt"):
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    # An uncaught exception (a database URL that fails at start, a thread that dies)
    # is written by this handler too, redacted, instead of raw by Python's default hook.
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("opsbot").critical("uncaught exception", exc_info=(kind, value, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("opsbot").critical(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
