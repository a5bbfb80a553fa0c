"""What opsbot takes of text people type, wherever they type it: a command, a form's
field, the CLI.

C0 control characters but a line break and a tab, and DEL, are refused: the database
refuses a NUL (PostgreSQL's text), and none of them means anything typed.
"""

from __future__ import annotations

import re

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def has_control(text: str) -> bool:
    """Whether typed text holds a control character opsbot does not take.

    A carriage return is taken as part of a line break: text pasted from elsewhere may
    end its lines with one.
    """
    return CONTROL.search(text.replace("\r", "")) is not None
