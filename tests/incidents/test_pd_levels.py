"""Which level a PagerDuty incident is at, from its assignees and who is on call.

Policies often name the first level's person again at the next (primary, then
primary and secondary together), and a manager may be in the first rota too: the
level must be the one where all the assignees are, or Escalate asks again for the
level the page is already at (or a lower one).
"""

from __future__ import annotations

from typing import Any

from bot.pagerduty.levels import current_level
from bot.pagerduty.webhooks import parse_incident

POLICY = "PPOLICY"


def incident(*assignees: str) -> Any:
    return parse_incident(
        {
            "id": "PINC1",
            "type": "incident",
            "incident_number": 7,
            "status": "triggered",
            "escalation_policy": {"id": POLICY, "type": "escalation_policy_reference"},
            "assignments": [
                {"assignee": {"id": user, "type": "user_reference"}} for user in assignees
            ],
        }
    )


def oncalls(**levels: tuple[int, ...]) -> list[dict[str, Any]]:
    return [
        {
            "escalation_level": level,
            "user": {"id": user, "type": "user_reference"},
            "escalation_policy": {"id": POLICY, "type": "escalation_policy_reference"},
        }
        for user, held in levels.items()
        for level in held
    ]


def test_a_level_naming_two_people_is_told_from_the_first_naming_one() -> None:
    rota = oncalls(UPRIMARY=(1, 2), USECONDARY=(2,), UMANAGER=(3,))
    assert current_level(incident("UPRIMARY"), rota) == 1
    assert current_level(incident("UPRIMARY", "USECONDARY"), rota) == 2
    assert current_level(incident("UMANAGER"), rota) == 3


def test_a_person_on_several_levels_is_at_the_lowest_not_below_the_last_known() -> None:
    rota = oncalls(UMANAGER=(1, 3), USECONDARY=(2,))
    assert current_level(incident("UMANAGER"), rota, known=2) == 3
    assert current_level(incident("UMANAGER"), rota, known=1) == 1
    assert current_level(incident("UMANAGER"), rota, known=5) == 3  # the highest held


def test_assignees_no_level_holds_together_tell_nothing() -> None:
    rota = oncalls(UPRIMARY=(1,), USECONDARY=(2,))
    assert current_level(incident("UPRIMARY", "USECONDARY"), rota) is None
    assert current_level(incident("UOUTSIDER"), rota) is None
    assert current_level(incident(), rota) is None
