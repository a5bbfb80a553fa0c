"""Who may link a PagerDuty identity by hand: a member their own Slack email; a guest
or someone of another organisation (Slack Connect) nothing, not even their own
profile's email, which this workspace does not vouch for; an admin anyone."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.config import parse_config
from bot.db.engine import make_sessionmaker
from bot.pagerduty.rest import PagerDutyUser
from bot.pagerduty.webhooks import Reference
from bot.people import service as people_service
from bot.people.errors import NoPagerDutyUser
from bot.people.links import PagerDutyLinks
from bot.rights.service import Rights
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.tls import TestCA
from tests.conftest import TEST_CONFIG
from tests.people.helpers import World, deactivate, make_world

ADMIN = "U0ADMIN"
GUEST = "U0GINA"
OUTSIDER = "U0OTTO"


@pytest.fixture
def world(
    engine: sa.Engine, slack: SlackEmulator, pagerduty: PagerDutyEmulator, test_ca: TestCA
) -> World:
    slack.add_user(ADMIN, "ada", email="ada@example.com")
    slack.add_user("U0ALICE", "alice", email="alice@example.com")
    # Their profiles say the email of a PagerDuty user of ours.
    slack.add_user(GUEST, "gina", email="bob@example.com", guest=True)
    slack.add_user(OUTSIDER, "otto", email="bob@example.com", team_id="T0OTHER")
    return make_world(engine, slack, pagerduty, test_ca)


@pytest.fixture
def links(world: World, engine: sa.Engine) -> PagerDutyLinks:
    config = parse_config({**TEST_CONFIG, "rights": {"admins": {"users": [ADMIN]}}})
    return PagerDutyLinks(
        sessions=make_sessionmaker(engine),
        people=world.people,
        rights=Rights(config=config, workspace=world.workspace),
        workspace=world.workspace,
        clock=world.clock,
    )


def audit(engine: sa.Engine) -> list[tuple[str, str, str, object]]:
    with make_sessionmaker(engine)() as db_session:
        rows = db_session.scalars(sa.select(AuditRecord).order_by(AuditRecord.id))
        return [(r.actor, r.target, r.outcome, (r.detail or {}).get("reason")) for r in rows]


@pytest.mark.parametrize("who", [GUEST, OUTSIDER])
def test_a_guest_or_an_outsider_cannot_link_even_their_own_slack_email(
    who: str, world: World, links: PagerDutyLinks, engine: sa.Engine
) -> None:
    answer = links.link(requester=who, email="bob@example.com")
    assert "Guests and people of other organisations cannot link" in answer
    assert "`admin`" in answer
    assert world.people.current_link(who) is None
    assert audit(engine) == [
        (who, f"slack-user:{who}", "refused", "`admin` (a guest linking)"),
    ]


def test_an_admin_links_a_guest_and_a_member_links_their_own_email(
    world: World, links: PagerDutyLinks
) -> None:
    assert links.link(requester=ADMIN, email="bob@example.com", for_user=GUEST).startswith(
        ":link: Linked:"
    )
    assert links.link(requester="U0ALICE", email="ALICE@example.com").startswith(":link: Linked:")
    gina, alice = world.people.current_link(GUEST), world.people.current_link("U0ALICE")
    assert gina is not None and gina[0].id == "PBOB" and gina[1]
    assert alice is not None and alice[0].id == "PALICE" and alice[1]


def test_nobody_links_a_deactivated_slack_account(
    world: World, links: PagerDutyLinks, slack: SlackEmulator, engine: sa.Engine
) -> None:
    deactivate(slack, GUEST)
    answer = links.link(requester=ADMIN, email="bob@example.com", for_user=GUEST)
    assert "<@U0GINA>'s Slack account is deactivated" in answer
    assert world.people.current_link(GUEST) is None
    assert audit(engine) == [(ADMIN, f"slack-user:{GUEST}", "refused", "an active Slack account")]


@pytest.mark.parametrize("who", [GUEST, OUTSIDER])
def test_a_guest_or_an_outsider_acts_in_pagerduty_only_once_an_admin_linked_them(
    who: str, world: World, links: PagerDutyLinks
) -> None:
    # Their profile's email is Bob's: taken as proof, they would act in PagerDuty as Bob.
    with pytest.raises(NoPagerDutyUser, match="guest or someone of another organisation"):
        world.people.pagerduty_user_for(who)
    assert world.people.current_link(who) is None

    links.link(requester=ADMIN, email="bob@example.com", for_user=who)
    assert world.people.pagerduty_user_for(who).id == "PBOB"  # the admin vouched for it


@pytest.mark.parametrize("who", [GUEST, OUTSIDER])
def test_a_guest_found_by_the_reverse_lookup_is_neither_shown_nor_acting_as_that_person(
    who: str, world: World, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    # Eve is a PagerDuty user of ours no member's Slack account has the email of; the
    # guest's profile (set by their own organisation) says it.
    if who == GUEST:
        slack.add_user(GUEST, "gina", email="eve@example.com", guest=True)
    else:
        slack.add_user(OUTSIDER, "otto", email="eve@example.com", team_id="T0OTHER")
    pagerduty.add_user("PEVE", "Eve Example", "eve@example.com")

    # Eve is on call: /oncall, Home or an incident message shows her.
    assert world.people.display(Reference(id="PEVE", name="Eve Example")) == "Eve Example"
    with pytest.raises(NoPagerDutyUser):
        world.people.pagerduty_user_for(who)


def test_a_guests_lookup_saved_before_the_upgrade_names_and_acts_as_nobody(
    world: World, engine: sa.Engine
) -> None:
    # What an older release saved when the guest, whose profile says Bob's email, acted.
    with make_sessionmaker(engine)() as db_session:
        people_service.save(
            db_session,
            slack_user_id=GUEST,
            user=PagerDutyUser("PBOB", "Bob Example", "bob@example.com"),
            linked=False,
            now=world.clock.now(),
        )
        db_session.commit()

    with pytest.raises(NoPagerDutyUser):
        world.people.pagerduty_user_for(GUEST)
    # Bob is named, found by his own Slack account's email; never the guest.
    assert world.people.display(Reference(id="PBOB", name="Bob Example")) == "<@U0BOB>"
