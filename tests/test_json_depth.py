"""The one depth check every route's JSON passes: exact at the limit, whatever the strings hold."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.json_depth import _STRING, MAX_DEPTH, JsonTooDeep, check_depth, loads
from bot.rights import github_oidc
from bot.rights.errors import TokenRefused


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n\u00e9\u0122\u015c'),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\a'), children, max_size=3)
    ),
    max_leaves=30,
)


@given(documents, st.integers(min_value=0, max_value=8))
def test_the_check_agrees_with_the_parsed_depth(document: Any, limit: int) -> None:
    text = json.dumps(document, ensure_ascii=False)
    if depth_of(document) > limit:
        with pytest.raises(JsonTooDeep):
            check_depth(text, limit=limit)
        with pytest.raises(JsonTooDeep):
            check_depth(text.encode(), limit=limit)
    else:
        check_depth(text, limit=limit)
        assert loads(text.encode(), limit=limit) == document


@given(
    documents,
    st.integers(min_value=0, max_value=8),
    st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]),
)
def test_the_check_of_bytes_agrees_with_what_json_parses_from_them(
    document: Any, limit: int, encoding: str
) -> None:
    # "\u0122" and "\u015c" hold a quote and a backslash byte in UTF-16 and -32.
    raw = json.dumps(document, ensure_ascii=False).encode(encoding)
    assert json.loads(raw) == document  # what a parser that detects the encoding reads
    if depth_of(document) > limit:
        with pytest.raises(JsonTooDeep):
            check_depth(raw, limit=limit)
    else:
        check_depth(raw, limit=limit)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_loads_takes_bytes_in_utf8_only(encoding: str) -> None:
    disguised = '["\u0122", ' + "[" * 50_000 + "]" * 50_000 + "]"
    with pytest.raises(ValueError):
        loads(disguised.encode(encoding))
    with pytest.raises(ValueError):
        loads('{"a": ["\u0122"]}'.encode(encoding))
    assert loads('{"a": ["\u0122"]}'.encode()) == {"a": ["\u0122"]}
    # A UTF-8 byte order mark is no other encoding: json.loads takes it from bytes.
    assert loads(b"\xef\xbb\xbf" + '{"a": ["\u0122"]}'.encode()) == {"a": ["\u0122"]}


def test_a_key_set_in_utf16_is_refused_not_crashed() -> None:
    disguised = '{"keys": ["\u0122", ' + "[" * 50_000 + "]" * 50_000 + "]}"
    with pytest.raises(TokenRefused, match="did not answer a key set"):
        github_oidc.verify(
            "a.b.c",
            issuer="https://token.actions.githubusercontent.com",
            repositories=["acme/opsbot"],
            fetch=lambda url: disguised.encode("utf-16"),
            audience="opsbot",
            now=0,
        )


def test_the_limit_is_400_levels() -> None:
    check_depth("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    with pytest.raises(JsonTooDeep, match="nested deeper than 400 levels"):
        loads('{"a": ' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1))


def test_a_body_far_too_deep_for_python_is_refused_not_crashed() -> None:
    with pytest.raises(JsonTooDeep):
        loads(b"[" * 1_000_000)
    with pytest.raises(ValueError):  # JsonTooDeep is a ValueError: callers' handlers hold
        loads("[" * 100_000 + "]" * 100_000)


def test_brackets_inside_strings_do_not_count() -> None:
    inside = json.dumps({"text": "[" * 5000, "escaped": '\\"' + "{" * 5000})
    assert loads(inside)["text"] == "[" * 5000


@pytest.mark.parametrize(
    "body",
    [b'"' + b'\\"' * 1000, b'"abc', b'{"a": "b\\"c', b'["x", "' + b"\\\\" * 50],
    ids=["escaped-quotes", "plain", "after-an-object-key", "escaped-backslashes"],
)
def test_a_string_left_open_is_taken_to_the_end_in_one_match(body: bytes) -> None:
    # Every quote that starts a match is consumed by it: no quote inside an
    # unterminated string starts a scan of its own to the end of the body (which
    # made the check take time in the square of the body's size).
    matches = list(_STRING.finditer(body))
    assert matches and matches[-1].end() == len(body)


def test_a_body_of_escaped_quotes_is_refused_as_malformed() -> None:
    with pytest.raises(ValueError):
        loads(b'"' + b'\\"' * 250_000)  # 500 KB: minutes before, a few milliseconds now
