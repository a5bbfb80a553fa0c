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
    """Raise JsonTooDeep when the arrays and objects of `raw` nest deeper than `limit`.

    Bytes are read in the encoding `json.loads` finds in them (UTF-8, -16 or -32):
    read as UTF-8, a UTF-16 body's bytes can hold a quote that is half a character,
    which hides the brackets after it from the scan but not from the parser.
    """
    if isinstance(raw, str):
        data = raw.encode("utf-8", "surrogatepass")
    elif (encoding := json.detect_encoding(raw)).startswith("utf-8"):
        data = raw
    else:
        # "replace": where the parser could decode, the same brackets and quotes; where
        # it could not, it fails before any depth matters.
        data = raw.decode(encoding, "replace").encode("utf-8")
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
    """`json.loads`, refusing (JsonTooDeep, a ValueError) JSON nested deeper than `limit`.

    Bytes must be UTF-8 (a byte order mark allowed), as JSON between systems is
    (RFC 8259); any other raises UnicodeDecodeError, a ValueError too. The text
    decoded once is the text both checked and parsed.
    """
    # utf-8-sig: a byte order mark, which json.loads takes from bytes, is no part of the text.
    text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    check_depth(text, limit=limit)
    return json.loads(text)
