"""Whether two windows may hold one alarm: globs read as fnmatch reads them, routes by name."""

from __future__ import annotations

from fnmatch import fnmatchcase

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bot.maintenance.overlap import Reach, may_share, shared_name

# Few characters, so that random globs often meet (and brackets often open and close).
GLOB_CHARS = "ab-]![*?"
NAME_CHARS = "ab-]![\n"


@pytest.mark.parametrize(
    ("a", "b", "shared"),
    [
        ("prod-api-*", "prod-api*-*", True),
        ("prod-api-*", "prod-api-[a-z]*", True),
        ("prod-api-*", "prod-api-5xx", True),
        ("prod-*", "*-5xx", True),
        ("prod-a*", "prod-b*", False),
        ("prod-api-*", "prod-db-*", False),
        ("[a-c]x", "[!a-c]*", False),
        ("[!a]", "[!b]", True),  # a name of neither letter
        ("a[]]b", "a]b", True),  # `]` first in a set is one of its characters
        ("a[b", "a[b", True),  # an unclosed `[` is a literal
        ("a[b", "ab", False),
        ("[z-a]*", "*", False),  # an empty range matches nothing
        ("*", "", True),
        ("?", "", False),
    ],
)
def test_two_globs_share_a_name_exactly_when_one_matches_both(a: str, b: str, shared: bool) -> None:
    name = shared_name(a, b)
    assert (name is not None) is shared
    if name is not None:
        assert fnmatchcase(name, a) and fnmatchcase(name, b)


@given(
    st.text(GLOB_CHARS, max_size=8),
    st.text(GLOB_CHARS, max_size=8),
    st.lists(st.text(NAME_CHARS, max_size=8), max_size=20),
)
@example("[!]-a]*", "*[]-b]", ["]"])
def test_a_name_both_globs_match_is_never_missed_nor_made_up(
    a: str, b: str, names: list[str]
) -> None:
    found = shared_name(a, b)
    if found is not None:
        assert fnmatchcase(found, a) and fnmatchcase(found, b)
    for name in names:
        if fnmatchcase(name, a) and fnmatchcase(name, b):
            assert found is not None


def test_routes_share_by_name_and_with_globs_by_their_rules_or_recorded_incidents() -> None:
    prod = Reach(route="prod", globs=("prod-*",), names=frozenset({"legacy-cpu"}))
    assert may_share(prod, Reach(route="prod", globs=("other-*",)))
    assert not may_share(prod, Reach(route="default", globs=("*",)))
    assert may_share(prod, Reach(route=None, globs=("prod-api-*",)))  # by its rule
    assert may_share(Reach(route=None, globs=("legacy-*",)), prod)  # by a recorded incident
    assert not may_share(prod, Reach(route=None, globs=("staging-*",)))
