"""How deeply JSON from outside may nest, checked before anything parses it.

Python's `json` decoder recurses once per level: a few thousand `[` in a small
body raise RecursionError (an answer of 500) instead of a refusal. Every place
that parses JSON from outside (the SNS envelope and the alarm inside it, Slack's
bodies before Bolt parses them, PagerDuty webhooks) asks `check_depth` first, or
parses through `loads`. The scan runs in C-speed passes (a regex removes the
strings, `bytes.translate` keeps only brackets), and costs about what parsing does.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate, repeat
from operator import sub
from typing import Any

MAX_DEPTH = 400

# A JSON string: a quote, then runs of plain characters or escapes, then its
# closing quote, or the end of the body. Valid JSON has no quote outside strings,
# so removing every match leaves only the structure; in malformed JSON what is
# left may be wrong, and parsing fails anyway. The closing quote is optional so
# that every match attempt succeeds: an unterminated string (`"\"\"\"...`) is
# consumed once, where a required quote made each escaped one start a scan to
# the end, and a 512 KiB body took minutes.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# An opening bracket becomes 2, a closing one 0: minus 1, a step up or down.
_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_SLICE = 64 * 1024


class JsonTooDeep(ValueError):
    """JSON nested deeper than the limit; the message says how deep it may be."""


def check_depth(raw: bytes | str, *, limit: int = MAX_DEPTH) -> None:
    """Raise JsonTooDeep when the arrays and objects of `raw` nest deeper than `limit`."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    structure = _STRING.sub(b"", data).translate(None, delete=_NOT_BRACKETS)
    if structure.count(b"[") + structure.count(b"{") <= limit:
        return  # fewer openings than the limit: nothing can nest deeper
    steps = structure.translate(_STEPS)
    level = 0
    # In slices, so that a body that is deep from its first bytes is refused at once.
    for start in range(0, len(steps), _SLICE):
        levels = list(accumulate(map(sub, steps[start : start + _SLICE], repeat(1)), initial=level))
        if max(levels) > limit:
            raise JsonTooDeep(f"JSON nested deeper than {limit} levels")
        level = levels[-1]


def loads(raw: bytes | str, *, limit: int = MAX_DEPTH) -> Any:
    """`json.loads`, refusing (JsonTooDeep, a ValueError) JSON nested deeper than `limit`."""
    check_depth(raw, limit=limit)
    return json.loads(raw)
