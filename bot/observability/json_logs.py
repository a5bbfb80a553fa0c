"""Log records as JSON lines: one object per line, for CloudWatch Logs Insights.

Each line has `ts` (ISO 8601, UTC), `level`, `logger` and `msg`, then the ids
the call passed with `extra=` (`incident`, `alarm_arn`, `delivery`,
`slack_user`, `request`, ...), then `exc` for a traceback. Every string goes
through the secret redaction first, and json.dumps escapes what could break
the line or forge another (newlines, quotes, control characters).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has: anything else on a record came with `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _plain(value: Any, redact: Callable[[str], str]) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(item, redact) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, redact) for k, v in value.items()}
    return redact(str(value))


class JsonLines(logging.Formatter):
    """Formats a record as one JSON object, with secrets redacted from every value."""

    def __init__(self, redact: Callable[[str], str] = lambda text: text) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": self.redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in line:
                line[key] = _plain(value, self.redact)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = self.redact(record.exc_text)
        if record.stack_info:
            line["stack"] = self.redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=True, default=str)
