"""No configured secret reaches a log line, an argument or a traceback."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from bot.cli import _secrets
from bot.config import load_config
from bot.db.engine import DbTimeouts, make_engine
from bot.log import REDACTED, OneLine, RedactSecrets
from bot.observability.json_logs import JsonLines
from bot.outbox.replies import order_key
from bot.settings import Settings
from sandbox.server import free_port

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


def test_the_database_password_never_reaches_a_log_line(tmp_path: Path) -> None:
    """A failed connection logged with its URL, its error and its traceback: no password."""
    password = "Db-pa55word-42"
    url = f"postgresql://opsbot:{password}@127.0.0.1:{free_port()}/opsbot"
    settings = Settings(database_url=url, var_dir=tmp_path)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets(_secrets(settings, load_config(None))))
    log = logging.getLogger("redaction-test-database")
    log.addHandler(handler)
    log.propagate = False

    engine = make_engine(settings.effective_database_url, timeouts=DbTimeouts(connect_s=2))
    try:
        with pytest.raises(OperationalError) as failure:
            engine.connect()
    finally:
        engine.dispose()
    log.error("could not connect to %s: %s", settings.database_url, failure.value)
    try:
        raise RuntimeError(f"conninfo host=127.0.0.1 password={password} dbname=opsbot")
    except RuntimeError:
        log.exception("connection string refused")

    output = stream.getvalue()
    assert "could not connect to postgresql://opsbot:[redacted]@127.0.0.1" in output
    assert "password=[redacted]" in output
    assert password not in output


def test_any_password_in_a_url_or_connection_string_is_redacted() -> None:
    """Even one no setting names: a library may quote a URL or connection string of its own."""
    filter_ = RedactSecrets([])
    assert filter_.redact("postgresql+psycopg://u:hunter2x@db:5432/x?sslmode=require") == (
        "postgresql+psycopg://u:[redacted]@db:5432/x?sslmode=require"
    )
    assert (
        filter_.redact(r"host=db PASSWORD = 'a b\'c' user=x")
        == "host=db PASSWORD = [redacted] user=x"
    )
    assert filter_.redact("see https://127.0.0.1:3000/sns") == "see https://127.0.0.1:3000/sns"


def test_a_slack_response_url_or_webhook_never_reaches_a_log_line() -> None:
    """Whoever holds a response_url may post in its channel: the path is the secret."""
    url = "https://hooks.slack.com/commands/T0001/1234567890/AbCdEfGhIjKlMnOp"
    filter_ = RedactSecrets([])
    assert filter_.redact(f"POST {url} failed") == (
        "POST https://hooks.slack.com/commands/[redacted] failed"
    )
    hook = "https://hooks.slack.com/services/T0/B0/XyZ"
    assert "XyZ" not in filter_.redact(f"{{'url': '{hook}'}}")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines(filter_.redact))
    handler.addFilter(filter_)
    log = logging.getLogger("redaction-test-hooks")
    log.addHandler(handler)
    log.propagate = False
    log.warning("answer under %s", url, extra={"order_key": f"respond:{url}"})
    assert "AbCdEfGhIjKlMnOp" not in stream.getvalue()
    assert "hooks.slack.com/commands/[redacted]" in stream.getvalue()


def test_an_answers_order_key_does_not_carry_its_response_url() -> None:
    """The key is logged when a claim outlives its lease; it names the request, not
    the credential."""
    url = "https://hooks.slack.com/actions/T0001/99/SeCrEtPaTh"
    key = order_key(url)
    assert "SeCrEtPaTh" not in key and key.startswith("respond:")
    assert key == order_key(url) != order_key(url + "x")


def test_an_uncaught_exception_is_written_redacted() -> None:
    """A crash (a database URL that fails at start) goes through the redacting handler too."""
    program = (
        "from bot.log import configure_logging\n"
        f"configure_logging('INFO', [{SECRET!r}])\n"
        f"raise RuntimeError('start failed: {SECRET} postgresql://u:pw-in-url@db/x')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "uncaught exception" in result.stderr and "RuntimeError" in result.stderr
    assert SECRET not in result.stderr and "pw-in-url" not in result.stderr


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


def test_http_clients_name_no_url_at_info() -> None:
    """A response_url is a capability (anyone holding it may post in the channel) and
    every Slack or PagerDuty call would be a line: the HTTP stacks log only warnings."""
    program = (
        "import logging, ssl\n"
        "from bot.log import configure_logging\n"
        "configure_logging('INFO', [])\n"
        "from bot.adapters.slack import Hooks, ResponseUrls, web_client\n"
        "from sandbox.server import HttpResponse, LoopbackServer\n"
        "server = LoopbackServer(lambda request: HttpResponse.json({'ok': True}))\n"
        "server.start()\n"
        "tls = ssl.create_default_context()\n"
        "hooks = Hooks.of(server.url + '/api/')\n"
        "ResponseUrls(tls=tls, timeout_s=5, hooks=hooks).post(\n"
        "    server.url + '/commands/T0/1/capability', {'text': 'x'})\n"
        "web_client(token='xoxb-x', base_url=server.url + '/api', tls=tls, timeout_s=5,\n"
        "    retries=False).auth_test()\n"
        "logging.getLogger('bot').info('calls made')\n"
        "server.stop()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "calls made" in result.stderr
    assert "capability" not in result.stderr and "auth.test" not in result.stderr
