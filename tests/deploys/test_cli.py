"""`opsbot deploy`: the Slack deploy path from a terminal or a pipeline, with exit codes."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from joserfc.jwk import RSAKey

from bot.app import build_runtime
from bot.approvals import flows as approval_flows
from bot.approvals.errors import ClickRefused
from bot.audit.models import AuditRecord
from bot.cli import main
from bot.config import parse_config
from bot.db.engine import make_engine, make_sessionmaker
from bot.deploys.models import Deployment
from bot.settings import Settings
from sandbox.github_oidc import GithubOidcIssuer
from sandbox.slack import SlackEmulator
from sandbox.tls import TestCA, make_test_ca
from tests.conftest import SLACK_TOKEN
from tests.deploys.conftest import deploy_config
from tests.deploys.world import World
from tests.support import wait_for

REPOSITORY = "acme/opsbot"


@pytest.fixture
def github(test_ca: TestCA) -> Iterator[GithubOidcIssuer]:
    issuer = GithubOidcIssuer(tls=test_ca.server_context()).start()
    yield issuer
    issuer.stop()


@pytest.fixture
def cli_env(
    tmp_path: Path,
    database_url: str,
    moto_server: str,
    github: GithubOidcIssuer,
    test_ca: TestCA,
    slack: SlackEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, Any]]:
    """The environment GitHub Actions gives `opsbot deploy`: the database, AWS, Slack's
    token (rights ask Slack whether the person is a guest), the config.

    The pipeline's identity, `github:octocat` (from a token GitHub signed for a run of
    acme/opsbot), acts as Alice (U0ALICE).
    """
    config = deploy_config(
        deploys={"poll_interval_s": 1, "starting_grace_s": 60},
        rights={
            "cli": {"github:octocat": "U0ALICE", "github:carol-gh": "U0CAROL"},
            "cli_github": {"repositories": [REPOSITORY], "issuer": github.issuer},
        },
    )
    path = tmp_path / "opsbot.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", slack.api_url)
    monkeypatch.setenv("OPSBOT_CONFIG", str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(test_ca.ca_file))
    monkeypatch.setenv(TOKEN, github.token(actor="octocat", repository=REPOSITORY))
    yield config  # tests/conftest.py puts back the logging handlers the CLI replaced


TOKEN = "OPSBOT_GITHUB_OIDC_TOKEN"


def deployments(database_url: str) -> list[Deployment]:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as db:
        rows = list(db.scalars(sa.select(Deployment).order_by(Deployment.id)))
    engine.dispose()
    return rows


def audit_trail(database_url: str) -> list[tuple[str, str, str]]:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as db:
        rows = [(r.action, r.actor, r.outcome) for r in db.scalars(sa.select(AuditRecord))]
    engine.dispose()
    return rows


def test_deploy_from_the_cli_acts_as_the_slack_user_its_identity_maps_to(
    cli_env: dict[str, Any],
    world: World,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["deploy", "api", "staging", "1.0.2"]) == 0
    out = capsys.readouterr().out
    assert "Deploy #1 of api 1.0.2 to api/staging started (api-staging:2)" in out
    assert world.service_task_definition("staging").endswith("api-staging:2")
    [row] = deployments(database_url)
    assert row.actor == "U0ALICE" and row.status == "rolling_out"

    # Locks apply to the pipeline too: a second deploy is refused while this one runs.
    assert main(["deploy", "api", "staging", "1.0.1"]) == 3
    out = capsys.readouterr().out
    assert "refused: api/staging is busy: deployment #1 (api 1.0.2) by <@U0ALICE>" in out

    assert main(["deploy", "api", "staging", "0.0.0-nope"]) == 3
    assert capsys.readouterr().out == (
        "refused: There is no image 0.0.0-nope in api. "
        "Most recent tags in api: 1.0.4, 1.0.3, 1.0.2, 1.0.1, 1.0.0.\n"
    )

    # No such app or environment is bad input (2), as docs/deploys.md says, not a refusal.
    assert main(["deploy", "api", "nowhere", "1.0.2"]) == 2
    assert main(["deploy", "nothing", "staging", "1.0.2"]) == 2


def test_wait_follows_the_rollout_to_its_end(
    cli_env: dict[str, Any], world: World, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(
            main(["deploy", "api", "staging", "1.0.2", "--wait", "--timeout-min", "1"])
        )
    )
    thread.start()
    wait_for(lambda: [d for d in deployments(database_url) if d.status == "rolling_out"])
    world.rollouts.progress("staging", running=1, pending=1)
    wait_for(lambda: "1/2 running" in capsys.readouterr().out, timeout_s=10)
    world.rollouts.complete("staging")
    thread.join(30)
    assert result == [0]
    [row] = deployments(database_url)
    assert row.status == "completed"


def test_a_protected_environment_waits_for_a_deployer_in_slack(
    cli_env: dict[str, Any],
    world: World,
    database_url: str,
    settings: Settings,
    moto_server: str,
    releases: SlackEmulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["deploy", "api", "prod", "1.0.2"]) == 0
    out = capsys.readouterr().out
    assert "api/prod is protected: request #1 waits for the approval of a second person" in out
    assert world.service_task_definition("prod") == world.task_definitions["prod"]

    # Clicks in Slack (the button's code path, without HTTP): Alice asked through the
    # pipeline, so she cannot approve her own request; Bob, a deployer, can.
    runtime = build_runtime(
        settings.model_copy(update={"aws_endpoint_url": moto_server}),
        parse_config(cli_env),
        run_jobs=False,
    )
    runtime.start()
    try:
        with pytest.raises(ClickRefused, match="cannot approve your own request"):
            approval_flows.click(runtime, action_id=1, user_id="U0ALICE", decision="approve")
        assert world.service_task_definition("prod") == world.task_definitions["prod"]
        outcome = approval_flows.click(runtime, action_id=1, user_id="U0BOB", decision="approve")
    finally:
        runtime.stop()
    assert outcome.ran and outcome.text.startswith("Deploy #1 of `api` `1.0.2` to `api/prod`")
    assert world.service_task_definition("prod").endswith("api-prod:2")
    deployed = world.describe_task_definition(world.service_task_definition("prod"))
    assert deployed["containerDefinitions"][0]["image"] == world.image("1.0.2")
    [row] = deployments(database_url)
    assert (row.actor, row.approved_by) == ("U0ALICE", ["U0BOB"])


def test_force_from_the_cli_is_audited_under_the_mapped_user(
    cli_env: dict[str, Any], world: World, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deploy", "api", "staging", "1.0.3"]) == 3
    assert "CRITICAL 2 finding(s)" in capsys.readouterr().out
    assert main(["deploy", "api", "staging", "1.0.3", "--force", "accepted risk, SEC-12"]) == 0
    assert audit_trail(database_url) == [
        ("deploy.request", "U0ALICE", "refused"),
        ("deploy.start", "U0ALICE", "ok"),
        ("deploy.force", "U0ALICE", "ok"),
    ]


def test_an_identity_without_a_mapping_is_refused_and_changes_nothing(
    cli_env: dict[str, Any],
    world: World,
    github: GithubOidcIssuer,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(TOKEN, github.token(actor="mallory", repository=REPOSITORY))
    assert main(["deploy", "api", "staging", "1.0.2"]) == 3
    out = capsys.readouterr().out
    assert "refused: github:mallory is not a known CLI identity" in out
    assert "rights.cli" in out
    assert deployments(database_url) == []
    assert world.service_task_definition("staging") == world.task_definitions["staging"]
    assert audit_trail(database_url) == [("deploy.request", "cli:github:mallory", "refused")]


def test_the_runners_variables_name_nobody(
    cli_env: dict[str, Any],
    world: World,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GITHUB_ACTOR, USER and LOGNAME are variables anyone sets: without a token the CLI
    # is the account of its user id, which has no mapping here.
    monkeypatch.delenv(TOKEN)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    monkeypatch.setenv("USER", "octocat")
    monkeypatch.setenv("LOGNAME", "octocat")
    assert main(["deploy", "api", "staging", "1.0.2"]) == 3
    out = capsys.readouterr().out
    assert out.startswith("refused: os:") and "is not a known CLI identity" in out
    assert "octocat" not in out
    assert deployments(database_url) == []


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("another key", "bad_signature"),
        ("another audience", "aud"),
        ("another repository", "repository"),
        ("expired", "expired"),
        ("not a token", "not valid for opsbot"),
        ("another issuer", "iss"),
    ],
)
def test_a_token_github_did_not_sign_for_opsbot_is_refused_and_changes_nothing(
    case: str,
    why: str,
    cli_env: dict[str, Any],
    world: World,
    github: GithubOidcIssuer,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tokens = {
        "another key": lambda: github.token(
            actor="octocat",
            repository=REPOSITORY,
            key=RSAKey.generate_key(2048, parameters={"kid": github.key.kid}),
        ),
        "another audience": lambda: github.token(
            actor="octocat", repository=REPOSITORY, audience="sts.amazonaws.com"
        ),
        "another repository": lambda: github.token(actor="octocat", repository="mallory/fork"),
        "expired": lambda: github.token(
            actor="octocat", repository=REPOSITORY, exp=int(time.time()) - 3600
        ),
        "not a token": lambda: "octocat",
        "another issuer": lambda: github.token(
            actor="octocat", repository=REPOSITORY, iss="https://token.example.org"
        ),
    }
    monkeypatch.setenv(TOKEN, tokens[case]())
    assert main(["deploy", "api", "staging", "1.0.2"]) == 3
    out = capsys.readouterr().out
    assert out.startswith("refused: the GitHub OIDC token is not valid for opsbot"), out
    assert why in out
    assert deployments(database_url) == []
    assert world.service_task_definition("staging") == world.task_definitions["staging"]
    assert audit_trail(database_url) == [("deploy.request", "cli:unverified", "refused")]


def test_a_token_is_refused_when_no_repository_is_trusted_or_the_keys_cannot_be_read(
    tmp_path: Path,
    cli_env: dict[str, Any],
    world: World,
    github: GithubOidcIssuer,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    untrusting = {**cli_env, "rights": {**cli_env["rights"], "cli_github": {}}}
    path = tmp_path / "untrusting.yaml"
    path.write_text(yaml.safe_dump(untrusting), encoding="utf-8")
    monkeypatch.setenv("OPSBOT_CONFIG", str(path))
    assert main(["deploy", "api", "staging", "1.0.2"]) == 3
    assert "rights.cli_github.repositories" in capsys.readouterr().out

    github.stop()  # the issuer's key set is unreachable: nobody is verified
    monkeypatch.setenv("OPSBOT_CONFIG", str(tmp_path / "opsbot.yaml"))
    assert main(["deploy", "api", "staging", "1.0.2"]) == 3
    assert "GitHub's signing keys could not be read" in capsys.readouterr().out
    assert deployments(database_url) == []
    assert [line[1] for line in audit_trail(database_url)] == ["cli:unverified"] * 2


def test_a_re_run_acts_as_whoever_re_ran_it(
    cli_env: dict[str, Any],
    world: World,
    github: GithubOidcIssuer,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Octocat started the run; Carol re-ran it: Carol's rights apply, and she is no deployer.
    token = github.token(actor="octocat", repository=REPOSITORY, triggering_actor="carol-gh")
    monkeypatch.setenv(TOKEN, token)
    assert main(["deploy", "api", "staging", "1.0.2"]) == 3
    assert "refused: You may not deploy to api/staging" in capsys.readouterr().out
    assert deployments(database_url) == []
    assert audit_trail(database_url) == [("deploy.request", "U0CAROL", "refused")]


def test_the_cli_is_held_to_the_mapped_users_rights(
    cli_env: dict[str, Any],
    world: World,
    github: GithubOidcIssuer,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(TOKEN, github.token(actor="carol-gh", repository=REPOSITORY))
    assert main(["deploy", "api", "staging", "1.0.2"]) == 3
    assert "refused: You may not deploy to api/staging" in capsys.readouterr().out
    assert deployments(database_url) == []
    assert audit_trail(database_url) == [("deploy.request", "U0CAROL", "refused")]


def test_force_from_the_cli_needs_force_allowed(
    tmp_path: Path,
    cli_env: dict[str, Any],
    world: World,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = {**cli_env, "deploys": {**cli_env["deploys"], "force_allowed": {"users": ["U0BOB"]}}}
    path = tmp_path / "force.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    monkeypatch.setenv("OPSBOT_CONFIG", str(path))
    assert main(["deploy", "api", "staging", "1.0.3", "--force", "accepted risk"]) == 3
    assert "You may not force deploys" in capsys.readouterr().out
    assert deployments(database_url) == []


class ConnectProxy:
    """An HTTPS proxy on loopback that tunnels every CONNECT to one address, and counts them."""

    def __init__(self, to: tuple[str, int]) -> None:
        self.to = to
        self.connects: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            asked = b""
            while b"\r\n\r\n" not in asked and (chunk := client.recv(4096)):
                asked += chunk
            self.connects.append(asked.split(b"\r\n")[0])
            upstream = socket.create_connection(self.to)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.close()

    def close(self) -> None:
        self.sock.close()


def test_the_callers_proxy_and_ca_file_cannot_stand_in_for_github(
    tmp_path: Path,
    cli_env: dict[str, Any],
    world: World,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The caller's own "GitHub": a key set behind a certificate for GitHub's host from a
    # CA of theirs, reached through a proxy of theirs, and a token signed with that key.
    theirs = make_test_ca(tmp_path / "their-ca", hosts=("token.actions.githubusercontent.com",))
    fake = GithubOidcIssuer(tls=theirs.server_context()).start()
    proxy = ConnectProxy(("127.0.0.1", fake.server.port))
    try:
        trusting = {
            **cli_env,
            "rights": {**cli_env["rights"], "cli_github": {"repositories": [REPOSITORY]}},
        }
        path = tmp_path / "github-issuer.yaml"
        path.write_text(yaml.safe_dump(trusting), encoding="utf-8")
        monkeypatch.setenv("OPSBOT_CONFIG", str(path))
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("SSL_CERT_FILE", str(theirs.ca_file))
        forged = fake.token(
            actor="octocat",
            repository=REPOSITORY,
            iss="https://token.actions.githubusercontent.com",
        )
        monkeypatch.setenv(TOKEN, forged)
        assert main(["deploy", "api", "staging", "1.0.2"]) == 3
        assert "GitHub's signing keys could not be read" in capsys.readouterr().out
    finally:
        proxy.close()
        fake.stop()
    assert proxy.connects == []
    assert fake.key_fetches == 0
    assert deployments(database_url) == []
    assert audit_trail(database_url) == [("deploy.request", "cli:unverified", "refused")]


def test_named_environments_bind_the_token_to_jobs_of_those_environments(
    tmp_path: Path,
    cli_env: dict[str, Any],
    world: World,
    github: GithubOidcIssuer,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bound = {
        **cli_env,
        "rights": {
            **cli_env["rights"],
            "cli_github": {
                "repositories": [REPOSITORY],
                "issuer": github.issuer,
                "environments": ["staging"],
            },
        },
    }
    path = tmp_path / "bound.yaml"
    path.write_text(yaml.safe_dump(bound), encoding="utf-8")
    monkeypatch.setenv("OPSBOT_CONFIG", str(path))
    # A job of a branch with no environment (any push could run it) names nobody ...
    assert main(["deploy", "api", "staging", "1.0.2"]) == 3
    assert "environment" in capsys.readouterr().out
    monkeypatch.setenv(
        TOKEN, github.token(actor="octocat", repository=REPOSITORY, environment="preview")
    )
    assert main(["deploy", "api", "staging", "1.0.2"]) == 3
    assert deployments(database_url) == []
    # ... a job of the named environment does.
    monkeypatch.setenv(
        TOKEN, github.token(actor="octocat", repository=REPOSITORY, environment="staging")
    )
    assert main(["deploy", "api", "staging", "1.0.2"]) == 0
    [row] = deployments(database_url)
    assert row.actor == "U0ALICE"
