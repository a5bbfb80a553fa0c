"""Attribute values against AppConfig's constraints: typed, or refused with what is expected."""

from __future__ import annotations

import pytest

from bot.flags.document import FlagDocument
from bot.flags.errors import FlagRefused
from tests.flags.conftest import FLAGS_DOCUMENT


def banner(**given: str) -> dict[str, object]:
    document = FlagDocument(FLAGS_DOCUMENT).with_attributes("banner", given)
    return dict(document.raw["values"]["banner"])


def test_values_are_typed_by_their_constraints() -> None:
    values = banner(message="bye", code="ABC", regions="eu,us", weights="[1, 2.5]", sticky="true")
    assert values == {
        "enabled": False,
        "message": "bye",
        "code": "ABC",
        "regions": ["eu", "us"],
        "weights": [1, 2.5],
        "sticky": True,
    }
    # The original document is not changed.
    assert FLAGS_DOCUMENT["values"]["banner"] == {"enabled": False, "message": "hello"}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"message": "x" * 21}, "`banner.message` is at most 20 characters; 21 were given."),
        ({"regions": "eu,asia"}, "`banner.regions` is one of `eu`, `us`; not `asia`."),
        ({"weights": "1,-1"}, "`banner.weights` is a number of at least 0; `-1` is out of range."),
        ({"weights": "[1,"}, "`banner.weights` is a list"),
        ({"weights": "[" * 1200}, "`banner.weights` is a list"),  # json's recursion: refused
        ({"weights": "[[[1]]]"}, "`banner.weights` is a list"),
        ({"sticky": "yes"}, "`banner.sticky` is a boolean (`true` or `false`); `yes` is not."),
        ({"regions": ",".join(["eu"] * 26)}, "holds at most 25 items"),
    ],
)
def test_a_value_outside_its_constraints_is_refused(given: dict[str, str], message: str) -> None:
    with pytest.raises(FlagRefused) as refused:
        banner(**given)
    assert message in str(refused.value)


def test_an_unconstrained_attribute_keeps_its_type() -> None:
    document = FlagDocument(
        {"flags": {"f": {}}, "values": {"f": {"enabled": True, "limit": 3, "name": "x"}}}
    )
    changed = document.with_attributes("f", {"limit": "4", "name": "5"}).raw["values"]["f"]
    assert changed == {"enabled": True, "limit": 4, "name": "5"}
    with pytest.raises(FlagRefused, match="is a number; `many` is not"):
        document.with_attributes("f", {"limit": "many"})


@pytest.mark.timeout(60)  # the guard: a backtracking `re` holds the GIL for hours
def test_a_pattern_is_left_to_appconfig_even_a_catastrophic_one() -> None:
    """A document's `pattern` is not run here: AppConfig's own check decides on write."""
    assert banner(code="abc")["code"] == "abc"  # `^[A-Z]{3}$`: AppConfig refuses it
    document = FlagDocument(
        {
            "flags": {
                "f": {
                    "attributes": {
                        "slug": {"constraints": {"type": "string", "pattern": "^([a-z]+)*$"}}
                    }
                }
            },
            "values": {"f": {"enabled": True}},
        }
    )
    hostile = "a" * 40 + "!"
    assert document.with_attributes("f", {"slug": hostile}).raw["values"]["f"]["slug"] == hostile
