"""A key written twice in the configuration file is refused, named with its line:
PyYAML alone keeps the last copy, which silently drops routes, paging and rights."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.config import ConfigError, load_config_text

ROUTES = """alarm_routes:
  - name: prod
    match: {alarm_name: "prod-*"}
    channel: C0PRODALERTS
    pagerduty_routing_key_env: PD_KEY_PROD
  - match: {}
    channel: C0ALERTS
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, source="t.yaml")
    return caught.value.problems


def test_a_top_level_key_written_twice_is_refused_with_its_line() -> None:
    text = (
        ROUTES
        + "rights:\n  admins: {users: [U0ADMIN]}\n  respond: {groups: [S0ONCALL]}\n"
        + "rights:\n  respond: {everyone: true}\n"
    )
    assert problems(text) == [
        "line 11: key 'rights' appears twice (first on line 8): "
        "the last copy would silently replace the first"
    ]


def test_a_second_alarm_routes_block_is_refused() -> None:
    text = ROUTES + "alarm_routes:\n  - match: {}\n    channel: C0ALERTS\n"
    assert problems(text) == [
        "line 8: key 'alarm_routes' appears twice (first on line 1): "
        "the last copy would silently replace the first"
    ]


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("    channel: C0OTHERS\n", "channel"),
        ("    pagerduty_routing_key_env: PD_KEY_OTHER\n", "pagerduty_routing_key_env"),
    ],
)
def test_a_key_written_twice_inside_a_route_is_refused(line: str, key: str) -> None:
    lines = ROUTES.splitlines(keepends=True)
    text = "".join([*lines[:5], line, *lines[5:]])  # after the prod route's last key
    assert problems(text) == [
        f"line 6: key '{key}' appears twice (first on line {4 if key == 'channel' else 5}): "
        "the last copy would silently replace the first"
    ]


def test_a_key_written_twice_inside_rights_is_refused() -> None:
    text = ROUTES + "rights:\n  respond: {users: [U0ALICE], users: [U0BOB]}\n"
    assert problems(text) == [
        "line 9: key 'users' appears twice (first on line 9): "
        "the last copy would silently replace the first"
    ]


def test_a_merge_key_is_not_a_duplicate() -> None:
    # Keys beside `<<:` override the merged ones: what YAML means, not a mistake.
    text = """defaults: &route {channel: C0ALERTS, severity: info}
alarm_routes:
  - <<: *route
    match: {}
    severity: critical
"""
    # `defaults` itself is an unknown key; the merge is not reported as a duplicate.
    assert problems(text) == ["defaults: unknown key"]


def test_check_config_exits_2_naming_the_duplicate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(ROUTES + "rights: {}\nrights: {respond: {everyone: true}}\n")
    with pytest.raises(SystemExit) as stopped:
        main(["check-config", "--offline", str(path)])
    assert stopped.value.code == 2
    assert "line 9: key 'rights' appears twice (first on line 8)" in capsys.readouterr().err
