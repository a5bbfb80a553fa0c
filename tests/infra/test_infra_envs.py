"""Each environment root hands the bot every setting it needs through Terraform: every
deploy rolls Terraform's task definition back in, so a setting set by hand is lost."""

from __future__ import annotations

import re
from pathlib import Path


def service_call(repo: Path) -> str:
    """The arguments of modules/environment's `module "service"` block."""
    text = (repo / "infra/modules/environment/main.tf").read_text()
    (block,) = re.findall(r'^module "service" \{\n(.*?)^\}', text, re.MULTILINE | re.DOTALL)
    return block


def test_the_environment_hands_its_settings_to_the_service(infra_repo: Path) -> None:
    """Every deploy rolls Terraform's task definition back in: a setting the bot needs
    (OPSBOT_SNS_TOPIC_ACCOUNTS for an organisation's topic) must be one the roots set."""
    block = service_call(infra_repo)
    assert re.search(
        r"^\s*sns_topic_accounts\s*=\s*var\.sns_topic_accounts\s*$", block, re.MULTILINE
    )
    assert re.search(r"^\s*environment\s*=\s*var\.extra_environment\s*$", block, re.MULTILINE)
