"""Hostile input, generated: /deploy, /rollback and /releases parse or answer their usage."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from handlers.deploys import Usage, parse_deploy, parse_releases, parse_rollback

words = st.sampled_from(
    [
        "status",
        "history",
        "lock",
        "unlock",
        "help",
        "api",
        "prod",
        "1.4.2",
        "--force",
        "--force=",
        '"',
        "“hotfix”",
        "'",
        "#12",
        "12",
        "²",
        "٣",
        "-1",
        "; rm -rf /",
    ]
)
texts = st.lists(words | st.text(max_size=10), max_size=7).map(" ".join) | st.text(max_size=60)
shaped = st.tuples(
    st.sampled_from(["history", "lock", "status", ""]), words, words, words | st.text(max_size=6)
).map(" ".join)


@given(texts | shaped)
@example("history api prod ²")  # a digit to str.isdigit(), not to int()
def test_deploy_text_parses_or_gets_usage(text: str) -> None:
    try:
        command = parse_deploy(text)
    except Usage as usage:
        assert "/deploy" in str(usage) or "--force" in str(usage)
        return
    if command.verb == "history" and command.count is not None:
        assert command.count >= 0


@given(texts | shaped)
@example("api prod ٣")
def test_rollback_text_parses_or_gets_usage(text: str) -> None:
    try:
        command = parse_rollback(text)
    except Usage:
        return
    assert command.deployment_id is None or str(command.deployment_id) in text


def test_a_rollback_id_no_row_can_have_is_no_deployment() -> None:
    for number in ("99999999999999999999", "#2147483648", "9" * 4400):
        with pytest.raises(Usage, match="There is no deployment"):
            parse_rollback(f"api prod {number}")
    assert parse_rollback("api prod #2147483647").deployment_id == 2147483647


@given(texts)
def test_releases_text_always_parses(text: str) -> None:
    parse_releases(text)
