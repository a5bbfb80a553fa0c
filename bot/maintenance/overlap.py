"""Whether two maintenance windows may hold the same alarm, whatever their patterns say.

A window holds an alarm incident, known by its route and its alarm name: a route's
window holds every alarm of that route, a glob's window every alarm whose name the
glob matches (`fnmatchcase`), on any route. Two globs share an alarm exactly when
some name matches both, which `shared_name` decides by walking both globs at once.
"""

from __future__ import annotations

import fnmatch
import re
from collections import deque
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

STAR = -1  # a token that matches any run of characters; others are one character's mask


@dataclass(frozen=True)
class Reach:
    """The alarms a window may hold: of `route` only (None: of any route), named as
    one of `globs` matches or as one of `names` (alarm names taken literally).
    """

    route: str | None
    globs: tuple[str, ...]
    names: frozenset[str] = frozenset()


def may_share(a: Reach, b: Reach) -> bool:
    """Whether some alarm could be held by both windows.

    Two route windows share exactly when they name the same route. A route window's
    reach is the names its routes' rules may route there and the names of incidents
    already recorded on it, so it shares more often than alarms really arrive there
    (an earlier rule may take them first, and accounts and regions are not compared).
    Two globs share exactly when one name matches both.
    """
    if a.route is not None and b.route is not None:
        return a.route == b.route
    if any(shared_name(g, h) is not None for g in a.globs for h in b.globs):
        return True
    return any(fnmatchcase(n, g) for n in a.names for g in b.globs) or any(
        fnmatchcase(n, g) for n in b.names for g in a.globs
    )


def shared_name(a: str, b: str) -> str | None:
    """A name both globs match (`fnmatchcase`), or None when no name does.

    The two globs are walked together as automata, one state per pair of positions.
    A character class is tested only on characters that can tell classes apart: each
    character of either glob, the one after it, and NUL; any non-empty meeting of two
    classes holds one of them, since a class changes only at such characters.
    """
    alphabet = _alphabet(a + b)
    first, second = _tokens(a, alphabet), _tokens(b, alphabet)
    every = (1 << len(alphabet)) - 1
    came_from: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {(0, 0): None}
    todo = deque([(0, 0)])
    while todo:
        state = todo.popleft()
        i, j = state
        if i == len(first) and j == len(second):
            return _spelled(came_from, state)
        moves: list[tuple[tuple[int, int], str]] = []
        if i < len(first) and first[i] == STAR:
            moves.append(((i + 1, j), ""))
        if j < len(second) and second[j] == STAR:
            moves.append(((i, j + 1), ""))
        for mask_a, next_i in _steps(first, i, every):
            for mask_b, next_j in _steps(second, j, every):
                both = mask_a & mask_b
                if both:
                    char = alphabet[(both & -both).bit_length() - 1]
                    moves.append(((next_i, next_j), char))
        for target, char in moves:
            if target not in came_from:
                came_from[target] = (state, char)
                todo.append(target)
    return None


def _steps(tokens: tuple[int, ...], at: int, every: int) -> list[tuple[int, int]]:
    """The one-character moves from position `at`: (mask of characters, next position)."""
    if at == len(tokens):
        return []
    if tokens[at] == STAR:
        return [(every, at)]
    return [(tokens[at], at + 1)]


def _spelled(
    came_from: dict[tuple[int, int], tuple[tuple[int, int], str] | None], state: tuple[int, int]
) -> str:
    chars: list[str] = []
    step = came_from[state]
    while step is not None:
        state, char = step
        chars.append(char)
        step = came_from[state]
    return "".join(reversed(chars))


def _alphabet(text: str) -> str:
    """Printable characters first, so that a name shown to people reads as one."""
    chars = {"\0"}
    for char in text:
        chars.add(char)
        if ord(char) < 0x10FFFF:
            chars.add(chr(ord(char) + 1))
    return "".join(sorted(chars, key=lambda c: (not c.isprintable(), c)))


@lru_cache(maxsize=512)
def _tokens(glob: str, alphabet: str) -> tuple[int, ...]:
    """The glob as fnmatch reads it: STAR, or the mask over `alphabet` of one character.

    Brackets are found as fnmatch finds them (`]` first in the set is one of its
    characters, an unclosed `[` is a literal), and each is tested with fnmatch's own
    translation of it, so the two cannot read a class differently.
    """
    tokens: list[int] = []
    i = 0
    while i < len(glob):
        char = glob[i]
        if char == "*":
            if not tokens or tokens[-1] != STAR:
                tokens.append(STAR)
            i += 1
        elif char == "?":
            tokens.append((1 << len(alphabet)) - 1)
            i += 1
        elif char == "[" and (end := _bracket_end(glob, i)) is not None:
            tokens.append(_mask(re.compile(fnmatch.translate(glob[i : end + 1])), alphabet))
            i = end + 1
        else:
            tokens.append(1 << alphabet.index(char))
            i += 1
    return tuple(tokens)


def _bracket_end(glob: str, start: int) -> int | None:
    """Where the bracket opened at `start` closes, as fnmatch.translate reads it."""
    j = start + 1
    if j < len(glob) and glob[j] == "!":
        j += 1
    if j < len(glob) and glob[j] == "]":
        j += 1
    while j < len(glob) and glob[j] != "]":
        j += 1
    return j if j < len(glob) else None


def _mask(one_char: re.Pattern[str], alphabet: str) -> int:
    mask = 0
    for index, char in enumerate(alphabet):
        if one_char.match(char):
            mask |= 1 << index
    return mask
