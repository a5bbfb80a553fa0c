"""JSON log lines: one object per line, the ids passed with extra=, secrets redacted, unforgeable."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.log import RedactSecrets, configure_logging
from bot.observability.json_logs import JsonLines

SECRET = "fake-token-for-tests-0000"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    redactor = RedactSecrets([SECRET])
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines(redactor.redact))
    handler.addFilter(redactor)
    logger = logging.getLogger("opsbot.test.json")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_a_line_has_the_fields_and_the_ids(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    logger.info(
        "incident %s acknowledged",
        42,
        extra={"incident": 42, "slack_user": "U0ALICE", "delivery": 7, "alarm_arn": "arn:aws:x"},
    )
    [line] = lines(stream)
    assert line["level"] == "INFO"
    assert line["logger"] == "opsbot.test.json"
    assert line["msg"] == "incident 42 acknowledged"
    assert str(line["ts"]).endswith("+00:00")
    assert (line["incident"], line["slack_user"], line["delivery"]) == (42, "U0ALICE", 7)
    assert line["alarm_arn"] == "arn:aws:x"


@pytest.mark.parametrize(
    "hostile",
    [
        'x"}\n{"level": "CRITICAL", "msg": "forged"',
        "line one\r\nline two",
        "\x00\x1b[31mred\x07\u2028\u2029",
        '\\" \\n',
    ],
)
def test_hostile_values_cannot_break_a_line_or_forge_another(
    logged: tuple[logging.Logger, io.StringIO], hostile: str
) -> None:
    logger, stream = logged
    logger.warning("refused %s", hostile, extra={"request": hostile, "slack_user": hostile})
    [line] = lines(stream)  # exactly one line, and it parses
    assert line["msg"] == f"refused {hostile}"
    assert line["request"] == hostile and line["slack_user"] == hostile
    assert line["level"] == "WARNING"
    assert all(ord(c) < 128 for c in stream.getvalue())


def test_secrets_are_redacted_from_the_message_the_extras_and_the_traceback(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    try:
        raise RuntimeError(f"token {SECRET} refused")
    except RuntimeError:
        logger.exception("calling Slack with %s", SECRET, extra={"request": f"Bearer {SECRET}"})
    [line] = lines(stream)
    assert SECRET not in stream.getvalue()
    assert line["msg"] == "calling Slack with [redacted]"
    assert line["request"] == "Bearer [redacted]"
    assert "RuntimeError: token [redacted] refused" in str(line["exc"])


def test_configure_logging_writes_json_lines_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("INFO", [SECRET], json_lines=True)
        logging.getLogger("opsbot.test").info("hello %s", SECRET, extra={"incident": 3})
        err = capsys.readouterr().err.strip().splitlines()[-1]
        line = json.loads(err)
        assert line["msg"] == "hello [redacted]" and line["incident"] == 3
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
