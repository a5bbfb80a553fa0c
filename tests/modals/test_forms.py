"""Forms as data: their Slack views, and a submitted state read back as hostile input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import parse_config
from bot.modals import render, service, state
from bot.modals.errors import FieldErrors
from tests.conftest import TEST_CONFIG
from tests.deploys.conftest import deploy_config

FORM = service.deploy_form(parse_config(deploy_config()))


def select(value: Any) -> dict[str, Any]:
    return {"type": "static_select", "selected_option": {"value": value}}


def test_the_view_keeps_to_slacks_limits() -> None:
    view = render.view(FORM, metadata="{}")
    assert len(view["title"]["text"]) <= render.TITLE_MAX
    target = view["blocks"][0]
    assert [o["value"] for o in target["element"]["options"]] == ["api/staging", "api/prod"]
    assert view["blocks"][1]["element"] == {
        "action_id": service.TAG,
        "type": "external_select",
        "min_query_length": 0,
        "placeholder": {
            "type": "plain_text",
            "text": "Type to search the app's ECR tags",
            "emoji": True,
        },
    }
    with pytest.raises(ValueError, match="private_metadata"):
        render.view(FORM, metadata="x" * 3001)


def test_a_declare_form_offers_only_routes_that_page() -> None:
    form = service.declare_form(parse_config(TEST_CONFIG))
    assert [c.value for c in form.field(service.ROUTE).choices] == ["prod"]


def test_a_good_state_is_read() -> None:
    values = {
        service.TARGET: {service.TARGET: select("api/prod")},
        service.TAG: {
            service.TAG: {"type": "external_select", "selected_option": {"value": "1.0.1"}}
        },
        service.FORCE: {service.FORCE: {"type": "plain_text_input", "value": "  hotfix  "}},
    }
    assert state.read(FORM, {"values": values}) == {
        service.TARGET: "api/prod",
        service.TAG: "1.0.1",
        service.FORCE: "hotfix",
    }


def test_control_characters_in_one_line_text_are_refused() -> None:
    values = {
        service.TARGET: {service.TARGET: select("api/prod")},
        service.TAG: {service.TAG: {"type": "external_select", "selected_option": {"value": "1"}}},
        service.FORCE: {service.FORCE: {"type": "plain_text_input", "value": "a\nb"}},
    }
    with pytest.raises(FieldErrors) as caught:
        state.read(FORM, {"values": values})
    assert caught.value.errors == {service.FORCE: "Force, because…: contains control characters."}


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_any_state_is_read_or_refused_on_a_field(junk: Any) -> None:
    for candidate in (junk, {"values": junk}, {"values": {service.TARGET: junk}}):
        try:
            read = state.read(FORM, candidate)
        except FieldErrors as exc:
            assert set(exc.errors) <= {f.name for f in FORM.fields}
        else:
            assert read[service.TARGET] in {"api/staging", "api/prod"}


@pytest.mark.parametrize(
    ("mrkdwn", "plain"),
    [
        (
            "You may not deploy to `api/prod`. Allowed: <@U0ALICE>, <!subteam^S0DEP>.",
            "You may not deploy to api/prod. Allowed: @U0ALICE, @S0DEP.",
        ),
        ("See <https://example.com/x|the runbook> *now*", "See the runbook now"),
        ("`&lt;app&gt;` &amp; more", "<app> & more"),
    ],
)
def test_a_refusal_becomes_plain_text_for_a_field(mrkdwn: str, plain: str) -> None:
    assert render.plain_error(mrkdwn) == plain


def test_a_long_refusal_is_clipped() -> None:
    assert len(render.plain_error("word " * 500)) <= render.ERROR_MAX
