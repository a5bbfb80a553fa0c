"""No configured secret reaches a log line, an argument or a traceback."""

from __future__ import annotations

import io
import logging

from bot.log import REDACTED, OneLine, RedactSecrets

SECRET = "s3cr3t-value-123"


def logger_with(stream: io.StringIO) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets([SECRET, "ab"]))  # too short to redact safely: ignored
    logger = logging.getLogger(f"redaction-test-{id(stream)}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_secret_in_message_and_arguments_is_redacted() -> None:
    stream = io.StringIO()
    log = logger_with(stream)
    log.info("token is %s", SECRET)
    log.warning(f"inline {SECRET} too")
    output = stream.getvalue()
    assert SECRET not in output
    assert output.count(REDACTED) == 2


def test_secret_in_a_traceback_is_redacted() -> None:
    stream = io.StringIO()
    log = logger_with(stream)
    try:
        raise ValueError(f"bad credential {SECRET}")
    except ValueError:
        log.exception("failed")
    assert SECRET not in stream.getvalue()
    assert "ValueError" in stream.getvalue()


def test_a_line_break_from_outside_cannot_start_a_log_line_of_its_own() -> None:
    stream = io.StringIO()
    log = logger_with(stream)
    log.handlers[0].addFilter(OneLine())
    log.warning("topic %s refused", "arn:x\r\n2026 INFO ok\u2028\x1b[31m")
    log.info(f"inline {SECRET}\nforged")
    lines = stream.getvalue().splitlines()
    assert lines == [
        "topic arn:x\\r\\n2026 INFO ok\\u2028\\x1b[31m refused",
        f"inline {REDACTED}\\nforged",
    ]
