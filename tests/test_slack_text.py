"""bot/slack_text.py: outside text made inert for Slack, and cut to its limits."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bot.slack_text import (
    ZERO_WIDTH_SPACE,
    clip,
    code,
    code_block_text,
    entities,
    escape,
    fit_blocks,
    inert,
    keep_mentions,
    link,
    unescape,
    url_on,
)

# What an attacker puts into an alarm, a note or a webhook.
HOSTILE = (
    "<!channel> <!here> <!everyone> <@U0ALICE> <#C0PRODALERTS> <!subteam^S0ONCALL> "
    "<https://evil.example|Runbook> <!date^1^{date}|x> &lt;!channel&gt; ``` @here ` *b* _i_"
)
# Text made of the characters that matter to Slack's markup, and a few others.
markupish = st.text(alphabet=st.sampled_from("<>&!@#|`*_~;amplgt Uhere:/\n\u00e9"), max_size=400)


def test_escape_leaves_no_control_character_and_defuses_broadcast_words() -> None:
    shown = escape(HOSTILE)
    assert "<" not in shown and ">" not in shown
    assert "&lt;!channel&gt;" in shown and "&lt;@U0ALICE&gt;" in shown
    assert "&amp;lt;!channel&amp;gt;" in shown  # typed entities show as typed
    assert f"@{ZERO_WIDTH_SPACE}here" in shown and "@here" not in shown
    assert "*b* _i_" in shown  # formatting is harmless and kept


def test_unescape_reverses_entities_once() -> None:
    assert unescape(entities("a & b < c > d &lt;")) == "a & b < c > d &lt;"


def test_clip_never_cuts_an_entity_in_half() -> None:
    text = escape("ab&cd")  # ab&amp;cd
    assert clip(text, 4) == "ab…"
    assert clip(text, 8) == "ab&amp;…"
    assert clip("short", 10) == "short"
    assert clip("anything", 0) == ""


def test_clip_never_cuts_a_mention_or_link_in_half() -> None:
    assert clip("see <@U0ALICE> now", 10) == "see …"
    assert clip("<https://x.pagerduty.com/incidents/1|#12> and more", 20) == "…"


@given(markupish, st.integers(min_value=1, max_value=450))
@example("&" * 100, 7)
@example("<!channel>" * 40, 3)
def test_escape_and_clip_never_produce_markup_nor_exceed_the_limit(text: str, limit: int) -> None:
    shown = inert(text, limit)
    assert len(shown) <= limit
    assert "<" not in shown and ">" not in shown
    # Every & left starts an entity: none was cut in half.
    assert all(re.match("&(amp|lt|gt);", shown[i:]) for i, c in enumerate(shown) if c == "&")
    if len(escape(text)) <= limit:
        assert shown == escape(text)


@given(markupish)
def test_entities_round_trip(text: str) -> None:
    assert unescape(entities(text)) == text


def test_code_cannot_be_closed_by_a_backtick_in_the_text() -> None:
    shown = code("a`b ``` c\n<!here>")
    assert shown.startswith("`") and shown.endswith("`")
    assert shown.count("`") == 2
    assert "<" not in shown and "\n" not in shown


@given(markupish)
def test_code_block_text_never_holds_a_fence(text: str) -> None:
    shown = code_block_text(text)
    assert "``" not in shown
    assert "<" not in shown and ">" not in shown


def test_keep_mentions_keeps_opsbot_mentions_and_nothing_else() -> None:
    shown = keep_mentions(
        "reminded <@U0BOB>, <!subteam^S0ONCALL|@oncall>, <#C0PROD> and Eve &amp; co "
        "<!channel> <https://evil.example|Runbook> @here"
    )
    assert "<@U0BOB>" in shown and "<!subteam^S0ONCALL|@oncall>" in shown and "<#C0PROD>" in shown
    assert "Eve &amp; co" in shown  # an escaped name stays as it was escaped
    assert "&lt;!channel&gt;" in shown and "&lt;https://evil.example|Runbook&gt;" in shown
    assert f"@{ZERO_WIDTH_SPACE}here" in shown


@given(markupish)
def test_keep_mentions_is_idempotent_and_leaves_only_mentions(text: str) -> None:
    shown = keep_mentions(text)
    assert keep_mentions(shown) == shown
    rest = re.sub(r"<@[UW][A-Z0-9]+>|<!subteam\^[A-Z0-9]+(\|[^<>]*)?>|<#[CG][A-Z0-9]+>", "", shown)
    assert "<" not in rest and ">" not in rest


@pytest.mark.parametrize(
    "url",
    [
        "https://acme.pagerduty.com/incidents/Q1",
        "https://pagerduty.com/x",
    ],
)
def test_url_on_known_host(url: str) -> None:
    assert url_on(url, ["pagerduty.com"]) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://acme.pagerduty.com/incidents/Q1",  # not https
        "https://evil.example/acme.pagerduty.com",
        "https://pagerduty.com.evil.example/",
        "https://evilpagerduty.com/",
        "https://acme.pagerduty.com@evil.example/",
        "https://x:y@acme.pagerduty.com/",
        "https://acme.pagerduty.com:8443/",
        "https://acme.pagerduty.com/a|Runbook",
        "https://acme.pagerduty.com/a>b",
        "https://acme.pagerduty.com/a b",
        "https://acme.pagerduty.com/\n",
        "javascript:alert(1)//pagerduty.com",
        "https://xn--pgerduty-6ya.com/",
        "https://p\u0430gerduty.com/",  # a Cyrillic a
        "",
        None,
        42,
        "https://acme.pagerduty.com/" + "a" * 3000,
    ],
)
def test_url_on_refuses_anything_else(url: object) -> None:
    assert url_on(url, ["pagerduty.com"]) is None


def test_link_escapes_its_label_and_drops_unknown_hosts() -> None:
    hosts = ["pagerduty.com"]
    assert link("https://a.pagerduty.com/i/1", "#1 <b>", hosts=hosts) == (
        "<https://a.pagerduty.com/i/1|#1 &lt;b&gt;>"
    )
    assert link("https://evil.example/", "#1", hosts=hosts) == "#1"


def _section(size: int) -> dict[str, object]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": "x" * size}}


def test_fit_blocks_keeps_a_message_within_slack_limits() -> None:
    assert fit_blocks([_section(10)] * 50) == [_section(10)] * 50
    cut = fit_blocks([_section(10)] * 51)
    assert len(cut) == 50 and cut[-1]["type"] == "context"
    big = fit_blocks([_section(3000)] * 45)
    assert sum(len(b["text"]["text"]) for b in big if b["type"] == "section") <= 36_000
    assert big[-1]["type"] == "context"
