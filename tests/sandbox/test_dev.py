"""`opsbot dev` as a user starts it: a subprocess on a free port, driven over HTTP.

The console's API sends what the outside world would (signed SNS to /sns, signed
Slack requests to /slack/events); what the service did is read back from the
emulators' state through the same API. The demo world is checked through boto3
against the sandbox's own AWS endpoint, as opsbot's commands will use it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.aws import client
from sandbox import ecr
from tests.sandbox.dev_server import DevServer, start_dev_server
from tests.support import wait_for


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    server = start_dev_server(tmp_path_factory.mktemp("dev"), rollout_s=2.0)
    yield server
    server.stop()


@pytest.fixture
def aws(dev: DevServer) -> Any:
    endpoint = dev.settings["AWS_ENDPOINT_URL"]
    return lambda service: client(service, region="us-east-1", endpoint_url=endpoint)


def channel(state: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in state["channels"] if c["name"] == name)


def messages_about(dev: DevServer, channel_name: str, text: str) -> list[dict[str, Any]]:
    found = channel(dev.state(), channel_name)["messages"]
    return [m for m in found if text in m["text"]]


def test_serves_the_console_and_health(dev: DevServer) -> None:
    page = dev.get("/")
    assert page.status_code == 200
    assert "opsbot" in page.text and "/console/console.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert dev.get("/console/console.js").headers["content-type"].startswith("text/javascript")
    assert dev.get("/healthz").json() == {"status": "ok"}
    assert dev.get("/readyz").json()["status"] == "ready"


def test_prints_every_setting_with_secrets_masked(dev: DevServer) -> None:
    output = dev.output()
    assert f"Console: {dev.url}/" in output
    for name in ("SLACK_SIGNING_SECRET", "PAGERDUTY_API_TOKEN", "PAGERDUTY_WEBHOOK_SECRETS"):
        assert dev.settings[name] == "******** (set)"
    assert dev.settings["PD_KEY_SANDBOX"].startswith("********")
    assert dev.settings["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert dev.settings["SLACK_API_URL"].startswith("http://127.0.0.1:")
    assert "xoxb-sandbox" not in output and "pd-sandbox-token" not in output


def test_an_alarm_fired_in_the_console_is_posted_and_paged(dev: DevServer) -> None:
    name = f"prod-checkout-5xx-{uuid.uuid4().hex[:6]}"
    answer = dev.post("/console/api/alarm", {"name": name, "state": "ALARM", "count": 1})
    assert answer.json() == {"status": 200}

    posted = wait_for(lambda: messages_about(dev, "prod-alerts", name))
    assert "ALARM" in posted[0]["text"]
    buttons = [
        e["action_id"]
        for block in posted[0]["blocks"]
        if block["type"] == "actions"
        for e in block["elements"]
    ]
    assert "incident_acknowledge" in buttons
    incident = wait_for(lambda: [i for i in dev.state()["incidents"] if name in i["title"]])[0]
    assert incident["status"] == "triggered"
    assert incident["assignees"] == ["Alice Example"]


def test_a_button_click_from_the_console_acknowledges_in_pagerduty(dev: DevServer) -> None:
    name = f"prod-checkout-latency-{uuid.uuid4().hex[:6]}"
    dev.post("/console/api/alarm", {"name": name, "state": "ALARM", "count": 1})
    message = wait_for(lambda: messages_about(dev, "prod-alerts", name))[0]
    value = next(
        e["value"]
        for block in message["blocks"]
        if block["type"] == "actions"
        for e in block["elements"]
        if e["action_id"] == "incident_acknowledge"
    )
    wait_for(lambda: [i for i in dev.state()["incidents"] if name in i["title"]])

    answer = dev.post(
        "/console/api/click",
        {
            "user": "U0BOB",
            "channel": "C0PRODALERTS",
            "message_ts": message["ts"],
            "action_id": "incident_acknowledge",
            "value": value,
        },
    )
    assert answer.json() == {"status": 200}
    incident = wait_for(
        lambda: [
            i
            for i in dev.state()["incidents"]
            if name in i["title"] and i["status"] == "acknowledged"
        ]
    )[0]
    assert incident["acknowledged_by"] == ["Bob Example"]
    updated = wait_for(
        lambda: [
            m
            for m in messages_about(dev, "prod-alerts", name)
            if "acknowledged by" in json.dumps(m["blocks"])
        ]
    )
    assert updated[0]["edited"]


def test_acknowledging_in_the_pagerduty_app_reaches_slack_by_webhook(dev: DevServer) -> None:
    name = f"prod-checkout-5xx-{uuid.uuid4().hex[:6]}"
    dev.post("/console/api/alarm", {"name": name, "state": "ALARM", "count": 1})
    incident = wait_for(lambda: [i for i in dev.state()["incidents"] if name in i["title"]])[0]

    answer = dev.post(
        "/console/api/pagerduty",
        {"incident_id": incident["id"], "status": "acknowledged", "user": "U0ALICE"},
    )
    assert answer.json() == {"status": 200}
    wait_for(
        lambda: [
            m
            for m in messages_about(dev, "prod-alerts", name)
            if "acknowledged by" in json.dumps(m["blocks"])
        ]
    )


def test_a_storm_is_sent_as_many_signed_notifications(dev: DevServer) -> None:
    name = f"staging-storm-{uuid.uuid4().hex[:6]}"
    answer = dev.post("/console/api/alarm", {"name": name, "state": "ALARM", "count": 5})
    assert answer.json() == {"status": 202, "alarms": 5}
    wait_for(lambda: len(messages_about(dev, "alerts", name)) == 5, timeout_s=60)


def test_slash_commands_run_as_the_chosen_person(dev: DevServer) -> None:
    answer = dev.post(
        "/console/api/command",
        {"user": "U0CAROL", "channel": "C0ALERTS", "text": "/opsbot help"},
    )
    assert answer.json()["status"] == 200
    # /opsbot help answers behind its ack (the caller's rights), to the caller alone.
    shown = wait_for(
        lambda: [
            e
            for e in dev.state()["ephemerals"]
            if e["user"] == "U0CAROL" and "/opsbot help" in e["text"]
        ]
    )
    assert shown[0]["channel"] == "C0ALERTS"

    dev.post("/console/api/command", {"user": "U0ALICE", "channel": "C0ALERTS", "text": "/oncall"})
    # /oncall answers later, through its response_url: shown to the caller alone.
    wait_for(
        lambda: [
            e
            for e in dev.state()["ephemerals"]
            if e["source"] == "response_url" and e["user"] == "U0ALICE"
        ]
    )


def test_a_command_opsbot_does_not_have_is_answered_like_slack(dev: DevServer) -> None:
    answer = dev.post(
        "/console/api/command",
        {"user": "U0ALICE", "channel": "C0ALERTS", "text": "/no-such-command x"},
    )
    assert answer.json()["status"] == 404
    assert "no listener" in answer.json()["answer"]


def test_bad_input_and_foreign_requests_are_refused(dev: DevServer) -> None:
    bad_user = dev.post(
        "/console/api/command", {"user": "U0NOBODY", "channel": "C0ALERTS", "text": "/oncall"}
    )
    assert bad_user.status_code == 400 and "unknown user" in bad_user.json()["error"]
    not_a_command = dev.post(
        "/console/api/command", {"user": "U0ALICE", "channel": "C0ALERTS", "text": "oncall"}
    )
    assert not_a_command.status_code == 400
    too_big = dev.post("/console/api/alarm", {"name": "x", "state": "ALARM", "count": 10_000})
    assert too_big.status_code == 400
    # A cross-site form cannot send JSON; another site's name for us is not ours.
    form = dev.post(
        "/console/api/alarm",
        content=b"name=x&state=ALARM",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415
    rebound = dev.get("/console/api/state", headers={"Host": "evil.example:3000"})
    assert rebound.status_code == 403


def test_the_demo_world_in_ecr(aws: Any) -> None:
    images = aws("ecr").describe_images(repositoryName="checkout")["imageDetails"]
    tags = {t: i["imageDigest"] for i in images for t in i.get("imageTags", [])}
    assert {"1.3.0", "1.4.0", "1.4.1", "1.5.0", "latest", "1.6.0-rc.1", "1.6.0-rc.2"} <= set(tags)
    assert tags["1.5.0"] == tags["latest"] == ecr.digest_of("1.5.0")
    pushed = {t: i["imagePushedAt"] for i in images for t in i.get("imageTags", [])}
    assert pushed["1.3.0"] < pushed["1.4.0"] < pushed["1.5.0"] < pushed["1.6.0-rc.2"]
    findings = aws("ecr").describe_image_scan_findings(
        repositoryName="checkout", imageId={"imageDigest": tags["1.6.0-rc.1"]}
    )
    assert findings["imageScanFindings"]["findingSeverityCounts"]["CRITICAL"] == 1


def test_the_demo_services_run_images_pinned_by_digest(aws: Any, dev: DevServer) -> None:
    ecs = aws("ecs")
    service = ecs.describe_services(cluster="prod", services=["checkout"])["services"][0]
    task = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
    image = task["taskDefinition"]["containerDefinitions"][0]["image"]
    assert image.endswith("/checkout@" + ecr.digest_of("1.4.0"))
    assert [d["rolloutState"] for d in service["deployments"]] == ["COMPLETED"]
    shown = {s["environment"]: s for s in dev.state()["services"]}
    assert shown["prod"]["tags"] == ["1.4.0"] and shown["staging"]["tags"] == ["1.4.1"]


def _deploy(ecs: Any, cluster: str, tag: str) -> dict[str, Any]:
    service = ecs.describe_services(cluster=cluster, services=["checkout"])["services"][0]
    current = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
    task = current["taskDefinition"]
    containers = task["containerDefinitions"]
    containers[0]["image"] = containers[0]["image"].split("@")[0] + "@" + ecr.digest_of(tag)
    new = ecs.register_task_definition(
        family=task["family"],
        containerDefinitions=containers,
        cpu=task["cpu"],
        memory=task["memory"],
        networkMode=task["networkMode"],
        requiresCompatibilities=task["requiresCompatibilities"],
    )["taskDefinition"]["taskDefinitionArn"]
    updated: dict[str, Any] = ecs.update_service(
        cluster=cluster, service="checkout", taskDefinition=new
    )["service"]
    return updated


def test_a_rollout_finishes_like_ecs(aws: Any) -> None:
    ecs = aws("ecs")
    updated = _deploy(ecs, "staging", "1.5.0")
    primary = updated["deployments"][0]
    assert (primary["status"], primary["rolloutState"]) == ("PRIMARY", "IN_PROGRESS")
    assert primary["taskDefinition"] == updated["taskDefinition"]
    assert updated["deployments"][1]["status"] == "ACTIVE"

    def finished() -> Any:
        service = ecs.describe_services(cluster="staging", services=["checkout"])["services"][0]
        deployments = service["deployments"]
        return deployments if deployments[0]["rolloutState"] == "COMPLETED" else None

    deployments = wait_for(finished, timeout_s=30)
    assert len(deployments) == 1 and deployments[0]["id"] == primary["id"]
    assert deployments[0]["runningCount"] == deployments[0]["desiredCount"]


def test_an_image_that_crashes_fails_its_rollout_and_rolls_back(aws: Any) -> None:
    ecs = aws("ecs")
    before = ecs.describe_services(cluster="prod", services=["checkout"])["services"][0]
    failing = _deploy(ecs, "prod", "1.6.0-rc.2")["deployments"][0]

    def rolled_back() -> Any:
        service = ecs.describe_services(cluster="prod", services=["checkout"])["services"][0]
        states = {d["id"]: d["rolloutState"] for d in service["deployments"]}
        return service if states.get(failing["id"]) == "FAILED" else None

    service = wait_for(rolled_back, timeout_s=30)
    assert service["taskDefinition"] == before["taskDefinition"]
    failed = next(d for d in service["deployments"] if d["id"] == failing["id"])
    assert failed["failedTasks"] > 0 and "circuit breaker" in failed["rolloutStateReason"]
    wait_for(
        lambda: (
            ecs.describe_services(cluster="prod", services=["checkout"])["services"][0][
                "deployments"
            ][0]["rolloutState"]
            == "COMPLETED"
        ),
        timeout_s=30,
    )


def test_appconfig_flags_deploy_through_the_sandbox(aws: Any) -> None:
    appconfig = aws("appconfig")
    app = next(a for a in appconfig.list_applications()["Items"] if a["Name"] == "checkout")
    env = appconfig.list_environments(ApplicationId=app["Id"])["Items"][0]
    profile = appconfig.list_configuration_profiles(ApplicationId=app["Id"])["Items"][0]
    assert profile["Type"] == "AWS.AppConfig.FeatureFlags"
    latest = appconfig.list_hosted_configuration_versions(
        ApplicationId=app["Id"], ConfigurationProfileId=profile["Id"]
    )["Items"][0]
    document = json.loads(
        appconfig.get_hosted_configuration_version(
            ApplicationId=app["Id"],
            ConfigurationProfileId=profile["Id"],
            VersionNumber=latest["VersionNumber"],
        )["Content"].read()
    )
    assert document["version"] == "1" and "apple_pay" in document["flags"]
    deployed = appconfig.list_deployments(ApplicationId=app["Id"], EnvironmentId=env["Id"])
    assert deployed["Items"][0]["State"] == "COMPLETE"

    document["values"]["apple_pay"]["enabled"] = True
    version = appconfig.create_hosted_configuration_version(
        ApplicationId=app["Id"],
        ConfigurationProfileId=profile["Id"],
        Content=json.dumps(document).encode(),
        ContentType="application/json",
    )["VersionNumber"]
    started = appconfig.start_deployment(
        ApplicationId=app["Id"],
        EnvironmentId=env["Id"],
        DeploymentStrategyId="AppConfig.Linear50PercentEvery30Seconds",
        ConfigurationProfileId=profile["Id"],
        ConfigurationVersion=str(version),
    )
    assert started["State"] == "DEPLOYING"
    with pytest.raises(appconfig.exceptions.ConflictException):
        appconfig.start_deployment(
            ApplicationId=app["Id"],
            EnvironmentId=env["Id"],
            DeploymentStrategyId="AppConfig.AllAtOnce",
            ConfigurationProfileId=profile["Id"],
            ConfigurationVersion=str(version),
        )
    wait_for(
        lambda: (
            appconfig.get_deployment(
                ApplicationId=app["Id"],
                EnvironmentId=env["Id"],
                DeploymentNumber=started["DeploymentNumber"],
            )["State"]
            == "COMPLETE"
        ),
        timeout_s=30,
    )


def test_ssm_flags_of_staging(aws: Any) -> None:
    found = aws("ssm").get_parameters_by_path(Path="/service/checkout-staging/feature-flag/")
    values = {p["Name"].rsplit("/", 1)[-1]: p["Value"] for p in found["Parameters"]}
    assert values == {
        "NEW_CHECKOUT_FLOW": "true",
        "APPLE_PAY": "true",
        "MAINTENANCE_BANNER": "false",
    }


def test_role_manager_invocations_answer_in_its_format(aws: Any) -> None:
    lam = aws("lambda")

    def invoke(action: str) -> dict[str, Any]:
        answer = lam.invoke(
            FunctionName="checkout-staging-role-manager", Payload=json.dumps({"action": action})
        )
        assert answer["StatusCode"] == 200
        result: dict[str, Any] = json.loads(answer["Payload"].read())
        return result

    before = invoke("check")
    assert not before["ok"] and before["errors"][0].startswith("needs repair: create role")
    assert [r["exists"] for r in before["roles"]] == [False, False]
    repaired = invoke("manage")
    assert (
        repaired["ok"]
        and "create schema checkout owned by checkout_migrator" in repaired["changed"]
    )
    assert invoke("manage")["changed"] == []
    after = invoke("check")
    assert after["ok"] and after["tables_reachable"] and after["errors"] == []
    unknown = invoke("drop-everything")
    assert not unknown["ok"] and "unknown action" in unknown["errors"][0]
    config = lam.get_function(FunctionName="checkout-prod-role-manager")["Configuration"]
    assert config["Environment"]["Variables"]["APP_ROLE"] == "checkout_app"


def test_dbrole_check_from_the_console_renders_the_stand_ins_result(dev: DevServer) -> None:
    dev.post(
        "/console/api/command",
        {"user": "U0CAROL", "channel": "C0ALERTS", "text": "/dbrole check checkout prod"},
    )

    [shown] = wait_for(
        lambda: [
            e
            for e in dev.state()["ephemerals"]
            if e["source"] == "response_url" and "Database roles of `checkout/prod`" in e["text"]
        ]
    )
    assert shown["user"] == "U0CAROL"
    assert "(check): everything is in order." in shown["text"]
    assert "• `checkout_app`: LOGIN" in shown["text"]


def test_stops_cleanly_on_interrupt(tmp_path: Path) -> None:
    server = start_dev_server(tmp_path)
    server.stop()
    assert server.process.returncode == 0, server.output()


def test_the_first_prod_alarm_lists_the_seeded_changes_with_their_undo_buttons(
    dev: DevServer,
) -> None:
    name = f"prod-checkout-5xx-{uuid.uuid4().hex[:6]}"
    dev.post("/console/api/alarm", {"name": name, "state": "ALARM", "count": 1})
    posted = wait_for(lambda: messages_about(dev, "prod-alerts", name))[0]
    text = json.dumps(posted["blocks"])
    assert "*Changes to `checkout/prod` in the 2 h 0 min before this alarm*" in text
    assert "Deploy `1.4.0` (from `1.3.0`) by <@U0BOB>" in text
    assert "Flag `new_checkout_flow` `off` \\u2192 `on` by <@U0ALICE>" in text
    buttons = [
        e["text"]["text"]
        for block in posted["blocks"]
        if block["type"] == "actions"
        for e in block["elements"]
        if e["action_id"].startswith("incident_undo:")
    ]
    assert sorted(buttons) == ["Roll back to 1.3.0", "Turn new_checkout_flow off again"]
