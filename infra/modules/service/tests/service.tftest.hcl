# What matters in the service module: the task role allows what the bot does and
# nothing more, the alarms notify the topic, the edge is HTTPS-only and the log bucket
# is private and encrypted. Runs offline against a mocked AWS provider.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_elb_service_account" {
    defaults = { arn = "arn:aws:iam::156460612806:root" }
  }
  # Mocked ARNs must still look like ARNs: the provider validates references to them.
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/opsbot-test-mocked" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:mocked" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/mocked" }
  }
  mock_resource "aws_lb" {
    defaults = { arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/opsbot-test/mocked", arn_suffix = "app/opsbot-test/mocked" }
  }
  mock_resource "aws_lb_target_group" {
    defaults = { arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/opsbot-test/mocked", arn_suffix = "targetgroup/opsbot-test/mocked" }
  }
  mock_resource "aws_lb_listener" {
    defaults = { arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/opsbot-test/mocked/mocked" }
  }
  mock_resource "aws_wafv2_web_acl" {
    defaults = { arn = "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/opsbot-test/mocked" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:opsbot-test/app-mocked" }
  }
  mock_resource "aws_ssm_parameter" {
    defaults = { arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/opsbot-test/config" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::opsbot-test-alb-logs-mocked", id = "opsbot-test-alb-logs-mocked" }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = { arn = "arn:aws:ecs:eu-west-1:123456789012:cluster/opsbot-test", id = "arn:aws:ecs:eu-west-1:123456789012:cluster/opsbot-test" }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = { arn = "arn:aws:ecs:eu-west-1:123456789012:task-definition/opsbot-test:1" }
  }
}

# The first run applies (mocked); the runs with the same variables after it only plan
# against that state, which leaves every value known and keeps the suite fast.
variables {
  name                        = "opsbot-test"
  vpc_id                      = "vpc-0123456789abcdef0"
  public_subnet_ids           = ["subnet-pub-a", "subnet-pub-b"]
  private_subnet_ids          = ["subnet-priv-a", "subnet-priv-b"]
  certificate_arn             = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
  image_repository_url        = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/opsbot"
  image_repository_arn        = "arn:aws:ecr:eu-west-1:123456789012:repository/opsbot"
  image_tag                   = "0123456789abcdef0123456789abcdef01234567"
  config_yaml                 = "apps: {}\n"
  database_url_secret_arn     = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:opsbot-test/database-login-AbCdEf"
  database_secret_kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/db"
  database_security_group_id  = "sg-database"
  self_alarm_topic_arn        = "arn:aws:sns:eu-west-1:123456789012:opsbot-test-self-alarms"
  emf_namespace               = "opsbot/test"
  sns_topic_arns              = ["arn:aws:sns:eu-west-1:123456789012:opsbot-test-alarms"]
  alarm_queue_url             = "https://sqs.eu-west-1.amazonaws.com/123456789012/opsbot-test-alarms"
  alarm_queue_arn             = "arn:aws:sqs:eu-west-1:123456789012:opsbot-test-alarms"
  alarm_queue_kms_key_arn     = "arn:aws:kms:eu-west-1:123456789012:key/alarms"

  deployable_cluster_arns         = ["arn:aws:ecs:eu-west-1:123456789012:cluster/shop"]
  deployable_service_arns         = ["arn:aws:ecs:eu-west-1:123456789012:service/shop/web"]
  deployable_role_arns            = ["arn:aws:iam::123456789012:role/shop-web-task", "arn:aws:iam::123456789012:role/shop-web-execution"]
  deployable_repository_arns      = ["arn:aws:ecr:eu-west-1:123456789012:repository/shop-web"]
  flag_appconfig_application_arns = ["arn:aws:appconfig:eu-west-1:123456789012:application/abc1234"]
  flag_ssm_service_names          = ["shop-web"]
  role_manager_function_arns      = ["arn:aws:lambda:eu-west-1:123456789012:function:shop-role-manager"]
  feature_flag_parameter_arns     = { CHECKOUT_V2 = "arn:aws:ssm:eu-west-1:123456789012:parameter/service/opsbot/feature-flag/CHECKOUT_V2" }
  permissions_boundary_arn        = "arn:aws:iam::123456789012:policy/opsbot-test-permissions-boundary"
}

# The environment's permissions boundary (made by infra/bootstrap), with the deployable
# services' roles listed as passable: the roles below must fit inside it.
run "the_environments_permissions_boundary" {
  command = apply

  module {
    source = "../permissions-boundary"
  }

  variables {
    name               = "opsbot-test"
    passable_role_arns = ["arn:aws:iam::123456789012:role/shop-web-task", "arn:aws:iam::123456789012:role/shop-web-execution"]
  }
}

run "task_role_allows_exactly_what_the_bot_does" {
  command = apply

  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Action])) == toset([
      "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
      "kms:Decrypt",
      "ecs:DescribeServices", "ecs:UpdateService", "ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition",
      "ecs:ListTasks", "ecs:DescribeTasks", "ecs:TagResource",
      "iam:PassRole",
      "ecr:DescribeRepositories", "ecr:DescribeImages", "ecr:DescribeImageScanFindings",
      "appconfig:GetConfigurationProfile",
      "appconfig:ListHostedConfigurationVersions", "appconfig:GetHostedConfigurationVersion",
      "appconfig:CreateHostedConfigurationVersion", "appconfig:StartDeployment", "appconfig:GetDeployment",
      "appconfig:ListDeployments",
      "ssm:GetParametersByPath", "ssm:GetParameterHistory", "ssm:PutParameter",
      "ssm:GetParameter",
      "lambda:InvokeFunction",
    ])
    error_message = "The task role's actions differ from the list in docs/infrastructure.md."
  }

  assert {
    condition     = alltrue([for a in flatten([for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Action]) : !strcontains(a, "*")])
    error_message = "The task role must not use wildcard actions."
  }

  assert {
    condition     = alltrue([for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Effect == "Allow" && !contains(["NotAction", "NotResource"], keys(s)[0])])
    error_message = "Only plain Allow statements are expected."
  }

  # "*" only where AWS offers no resource-level permission, and ListTasks still
  # conditioned on the deployable clusters.
  assert {
    condition = toset(flatten([
      for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Action if s.Resource == "*"
    ])) == toset(["ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition", "ecs:ListTasks", "ecs:TagResource"])
    error_message = "Only the task-definition calls, their tagging on create and ListTasks may use Resource \"*\"."
  }

  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Condition.ArnEquals["ecs:cluster"] if s.Action == "ecs:ListTasks"
    ]) == ["arn:aws:ecs:eu-west-1:123456789012:cluster/shop", "arn:aws:ecs:eu-west-1:123456789012:cluster/opsbot-test"]
    error_message = "ListTasks must be limited to the deployable clusters."
  }

  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Condition.StringEquals["iam:PassedToService"] if s.Action == "iam:PassRole"
    ]) == "ecs-tasks.amazonaws.com"
    error_message = "PassRole must be conditioned on iam:PassedToService = ecs-tasks.amazonaws.com."
  }

  assert {
    condition = toset(one([
      for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Resource if s.Action == "iam:PassRole"
    ])) == toset(["arn:aws:iam::123456789012:role/shop-web-task", "arn:aws:iam::123456789012:role/shop-web-execution", aws_iam_role.task.arn, aws_iam_role.execution.arn])
    error_message = "PassRole must name the deployable services' roles only."
  }

  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Resource if s.Sid == "FlipSsmFlags"
    ]) == ["arn:aws:ssm:eu-west-1:123456789012:parameter/service/shop-web/feature-flag/*"]
    error_message = "SSM flag access must be scoped to /service/<name>/feature-flag/*."
  }

  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Resource if s.Sid == "ConsumeAlarmQueue"
    ]) == "arn:aws:sqs:eu-west-1:123456789012:opsbot-test-alarms"
    error_message = "The bot consumes its alarm queue only."
  }

  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Resource if s.Sid == "InvokeRoleManagers"
    ]) == ["arn:aws:lambda:eu-west-1:123456789012:function:shop-role-manager"]
    error_message = "lambda:InvokeFunction must name the role-manager functions only."
  }

  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Resource if s.Sid == "DescribeTasksOfDeployableClusters"])[0] == "arn:aws:ecs:eu-west-1:123456789012:task/shop/*"
    error_message = "DescribeTasks must be scoped to the tasks of the deployable clusters."
  }
}

# The GitHub deploy role may only create and change roles that carry the environment's
# permissions boundary, and the boundary must still allow what the bot and ECS do.
run "both_roles_carry_the_boundary_and_fit_inside_it" {
  command = plan

  assert {
    condition     = aws_iam_role.task.permissions_boundary == "arn:aws:iam::123456789012:policy/opsbot-test-permissions-boundary" && aws_iam_role.execution.permissions_boundary == "arn:aws:iam::123456789012:policy/opsbot-test-permissions-boundary"
    error_message = "The task and execution roles must carry the environment's permissions boundary."
  }

  assert {
    condition = length(setsubtract(
      toset(flatten([for p in [aws_iam_role_policy.task.policy, aws_iam_role_policy.execution.policy] : [for s in jsondecode(p).Statement : s.Action]])),
      toset(run.the_environments_permissions_boundary.actions),
    )) == 0
    error_message = "An action of the task or execution role is outside the permissions boundary (modules/permissions-boundary): it would be denied."
  }

  assert {
    condition = alltrue([
      for arn in one([for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Resource if s.Action == "iam:PassRole"]) :
      anytrue([
        for allowed in one([for s in jsondecode(run.the_environments_permissions_boundary.policy).Statement : s.Resource if s.Action == "iam:PassRole"]) :
        can(regex("^${replace(allowed, "*", ".*")}$", arn))
      ])
    ])
    error_message = "Every role the bot may pass must be passable under the boundary (its own roles, or listed there)."
  }
}

run "execution_role_reads_only_this_services_secrets" {
  command = plan

  assert {
    condition     = toset(one([for s in jsondecode(aws_iam_role_policy.execution.policy).Statement : s.Resource if s.Sid == "ReadSecrets"])) == toset([aws_secretsmanager_secret.app.arn, var.database_url_secret_arn])
    error_message = "The execution role may read the app secret and the database URL secret only."
  }

  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.execution.policy).Statement : s.Resource if s.Sid == "PullImage"]) == var.image_repository_arn
    error_message = "The execution role pulls from the bot's repository only."
  }
}

run "alarms_page_through_the_self_alarms_topic_not_the_bot" {
  command = plan

  assert {
    condition = alltrue([
      for a in [aws_cloudwatch_metric_alarm.alb_5xx, aws_cloudwatch_metric_alarm.target_5xx, aws_cloudwatch_metric_alarm.target_p99_latency,
        aws_cloudwatch_metric_alarm.unhealthy_hosts, aws_cloudwatch_metric_alarm.no_healthy_hosts, aws_cloudwatch_metric_alarm.cpu, aws_cloudwatch_metric_alarm.memory,
        aws_cloudwatch_metric_alarm.heartbeat_missing, aws_cloudwatch_metric_alarm.page_waiting, aws_cloudwatch_metric_alarm.slack_auth_lost,
      aws_cloudwatch_metric_alarm.tasks_below_desired, aws_cloudwatch_metric_alarm.jobs_late] :
      a.alarm_actions == toset([var.self_alarm_topic_arn]) && a.ok_actions == toset([var.self_alarm_topic_arn])
    ])
    error_message = "Every alarm on the bot must notify the self-alarms topic on ALARM and on OK."
  }

  assert {
    condition = alltrue([
      for a in [aws_cloudwatch_metric_alarm.alb_5xx, aws_cloudwatch_metric_alarm.target_5xx, aws_cloudwatch_metric_alarm.target_p99_latency,
        aws_cloudwatch_metric_alarm.unhealthy_hosts, aws_cloudwatch_metric_alarm.no_healthy_hosts, aws_cloudwatch_metric_alarm.cpu, aws_cloudwatch_metric_alarm.memory,
        aws_cloudwatch_metric_alarm.heartbeat_missing, aws_cloudwatch_metric_alarm.page_waiting, aws_cloudwatch_metric_alarm.deliveries_dead,
        aws_cloudwatch_metric_alarm.slack_auth_lost, aws_cloudwatch_metric_alarm.tasks_below_desired, aws_cloudwatch_metric_alarm.jobs_late,
      aws_cloudwatch_metric_alarm.jobs_given_up, aws_cloudwatch_metric_alarm.alarm_not_applied, aws_cloudwatch_metric_alarm.sns_unsubscribed] :
      length(setintersection(setunion(a.alarm_actions, coalesce(a.ok_actions, toset([]))), toset(var.sns_topic_arns))) == 0
    ])
    error_message = "No alarm on the bot may notify a topic the bot itself consumes."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.deliveries_dead.alarm_actions == toset([var.self_alarm_topic_arn]) && length(coalesce(aws_cloudwatch_metric_alarm.deliveries_dead.ok_actions, toset([]))) == 0
    error_message = "A dead delivery pages and stays open until a person has looked (no OK action)."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.jobs_given_up.alarm_actions == toset([var.self_alarm_topic_arn]) && length(coalesce(aws_cloudwatch_metric_alarm.jobs_given_up.ok_actions, toset([]))) == 0
    error_message = "A given-up scheduled job pages and stays open until a person has looked (no OK action)."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.alarm_not_applied.alarm_actions == toset([var.self_alarm_topic_arn]) && length(coalesce(aws_cloudwatch_metric_alarm.alarm_not_applied.ok_actions, toset([]))) == 0
    error_message = "An alarm not applied pages and stays open until a person has looked (no OK action)."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.sns_unsubscribed.alarm_actions == toset([var.self_alarm_topic_arn]) && length(coalesce(aws_cloudwatch_metric_alarm.sns_unsubscribed.ok_actions, toset([]))) == 0
    error_message = "A topic unsubscribed pages and stays open until a person has looked (no OK action)."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.target_p99_latency.extended_statistic == "p99"
    error_message = "The latency alarm watches p99."
  }
}

run "the_dead_mans_switch_breaches_on_silence" {
  command = plan

  assert {
    condition = (aws_cloudwatch_metric_alarm.heartbeat_missing.alarm_name == "opsbot-test-heartbeat-missing"
      && aws_cloudwatch_metric_alarm.heartbeat_missing.namespace == "opsbot/test"
      && aws_cloudwatch_metric_alarm.heartbeat_missing.metric_name == "opsbot_heartbeat"
      && aws_cloudwatch_metric_alarm.heartbeat_missing.statistic == "Sum"
      && aws_cloudwatch_metric_alarm.heartbeat_missing.period * aws_cloudwatch_metric_alarm.heartbeat_missing.evaluation_periods == 300
      && aws_cloudwatch_metric_alarm.heartbeat_missing.datapoints_to_alarm == aws_cloudwatch_metric_alarm.heartbeat_missing.evaluation_periods
      && aws_cloudwatch_metric_alarm.heartbeat_missing.comparison_operator == "LessThanThreshold"
    && aws_cloudwatch_metric_alarm.heartbeat_missing.threshold == 1)
    error_message = "The heartbeat alarm fires after 5 minutes without a heartbeat from any task."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.heartbeat_missing.treat_missing_data == "breaching"
    error_message = "No data at all is exactly what the dead-man's switch is for: missing data must breach."
  }
}

run "the_bots_own_numbers_are_watched" {
  command = plan

  assert {
    condition = (aws_cloudwatch_metric_alarm.page_waiting.alarm_name == "opsbot-test-page-waiting"
      && aws_cloudwatch_metric_alarm.page_waiting.namespace == "opsbot/test"
      && aws_cloudwatch_metric_alarm.page_waiting.metric_name == "opsbot_outbox_oldest_pending_seconds"
      && aws_cloudwatch_metric_alarm.page_waiting.dimensions["target"] == "pagerduty" && length(aws_cloudwatch_metric_alarm.page_waiting.dimensions) == 1
      && aws_cloudwatch_metric_alarm.page_waiting.statistic == "Maximum"
      && aws_cloudwatch_metric_alarm.page_waiting.threshold == 120
    && aws_cloudwatch_metric_alarm.page_waiting.comparison_operator == "GreaterThanThreshold")
    error_message = "A page waiting over 2 minutes in the outbox must alarm."
  }

  assert {
    condition = (aws_cloudwatch_metric_alarm.deliveries_dead.alarm_name == "opsbot-test-deliveries-dead"
      && aws_cloudwatch_metric_alarm.deliveries_dead.metric_name == "opsbot_deliveries_dead"
      && aws_cloudwatch_metric_alarm.deliveries_dead.statistic == "Sum"
      && aws_cloudwatch_metric_alarm.deliveries_dead.threshold == 0
    && aws_cloudwatch_metric_alarm.deliveries_dead.comparison_operator == "GreaterThanThreshold")
    error_message = "Any dead delivery must alarm."
  }

  assert {
    condition = (aws_cloudwatch_metric_alarm.jobs_late.alarm_name == "opsbot-test-jobs-late"
      && aws_cloudwatch_metric_alarm.jobs_late.namespace == "opsbot/test"
      && aws_cloudwatch_metric_alarm.jobs_late.metric_name == "opsbot_scheduled_jobs_overdue_seconds"
      && aws_cloudwatch_metric_alarm.jobs_late.statistic == "Maximum"
      && aws_cloudwatch_metric_alarm.jobs_late.threshold == 300
    && aws_cloudwatch_metric_alarm.jobs_late.comparison_operator == "GreaterThanThreshold")
    error_message = "A scheduled job due for over 5 minutes (no task runs jobs) must alarm."
  }

  assert {
    condition = (aws_cloudwatch_metric_alarm.jobs_given_up.alarm_name == "opsbot-test-jobs-given-up"
      && aws_cloudwatch_metric_alarm.jobs_given_up.metric_name == "opsbot_scheduled_jobs_given_up"
      && aws_cloudwatch_metric_alarm.jobs_given_up.statistic == "Sum"
      && aws_cloudwatch_metric_alarm.jobs_given_up.threshold == 0
    && aws_cloudwatch_metric_alarm.jobs_given_up.comparison_operator == "GreaterThanThreshold")
    error_message = "Any scheduled job given up must alarm."
  }

  assert {
    condition = (aws_cloudwatch_metric_alarm.slack_auth_lost.alarm_name == "opsbot-test-slack-auth-lost"
      && aws_cloudwatch_metric_alarm.slack_auth_lost.metric_name == "opsbot_slack_auth_ok"
      && aws_cloudwatch_metric_alarm.slack_auth_lost.statistic == "Minimum"
      && aws_cloudwatch_metric_alarm.slack_auth_lost.threshold == 1
    && aws_cloudwatch_metric_alarm.slack_auth_lost.comparison_operator == "LessThanThreshold")
    error_message = "Slack auth lost on any task (minimum below 1) must alarm."
  }

  assert {
    condition = (aws_cloudwatch_metric_alarm.slack_socket_down.alarm_name == "opsbot-test-slack-socket-down"
      && aws_cloudwatch_metric_alarm.slack_socket_down.metric_name == "opsbot_slack_socket_connected"
      && aws_cloudwatch_metric_alarm.slack_socket_down.statistic == "Maximum"
      && aws_cloudwatch_metric_alarm.slack_socket_down.threshold == 1
      && aws_cloudwatch_metric_alarm.slack_socket_down.comparison_operator == "LessThanThreshold"
    && aws_cloudwatch_metric_alarm.slack_socket_down.treat_missing_data == "notBreaching")
    error_message = "Socket Mode down on every task (maximum below 1) must alarm; HTTP mode, which writes no figure, must not."
  }

  assert {
    condition = (aws_cloudwatch_metric_alarm.alarm_not_applied.alarm_name == "opsbot-test-alarm-not-applied"
      && aws_cloudwatch_metric_alarm.alarm_not_applied.metric_name == "opsbot_intake_apply_failed"
      && aws_cloudwatch_metric_alarm.alarm_not_applied.statistic == "Sum"
      && aws_cloudwatch_metric_alarm.alarm_not_applied.threshold == 0
    && aws_cloudwatch_metric_alarm.alarm_not_applied.comparison_operator == "GreaterThanThreshold")
    error_message = "Any notification taken and not applied must alarm."
  }

  assert {
    condition = (aws_cloudwatch_metric_alarm.sns_unsubscribed.alarm_name == "opsbot-test-sns-unsubscribed"
      && aws_cloudwatch_metric_alarm.sns_unsubscribed.metric_name == "opsbot_sns_unsubscribed"
      && aws_cloudwatch_metric_alarm.sns_unsubscribed.statistic == "Sum"
      && aws_cloudwatch_metric_alarm.sns_unsubscribed.threshold == 0
    && aws_cloudwatch_metric_alarm.sns_unsubscribed.comparison_operator == "GreaterThanThreshold")
    error_message = "An alarms topic unsubscribing the HTTPS endpoint must alarm."
  }

  assert {
    condition = (
      one([for q in aws_cloudwatch_metric_alarm.tasks_below_desired.metric_query : q.expression if coalesce(q.return_data, false)]) == "desired - running"
      && toset(flatten([for q in aws_cloudwatch_metric_alarm.tasks_below_desired.metric_query : [for m in q.metric : m.metric_name]])) == toset(["DesiredTaskCount", "RunningTaskCount"])
      && alltrue(flatten([for q in aws_cloudwatch_metric_alarm.tasks_below_desired.metric_query : [for m in q.metric : m.namespace == "ECS/ContainerInsights"]]))
      && aws_cloudwatch_metric_alarm.tasks_below_desired.threshold == 0
    )
    error_message = "Running tasks below desired (Container Insights, metric math) must alarm."
  }

  assert {
    condition     = one([for s in aws_ecs_cluster.main.setting : s.value if s.name == "containerInsights"]) == "enabled"
    error_message = "Container Insights must be on: the tasks alarm reads its metrics."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.alb_5xx.metric_name == "HTTPCode_ELB_5XX_Count" && aws_cloudwatch_metric_alarm.alb_5xx.namespace == "AWS/ApplicationELB"
    error_message = "The load balancer's 5xx alarm stays."
  }
}

run "the_dashboard_shows_the_bots_numbers_and_alarms" {
  command = plan

  assert {
    condition = toset(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.service.dashboard_body).widgets : [for m in w.properties.metrics : m[1]] if w.type == "metric"
      ])) == toset([
      "opsbot_heartbeat", "opsbot_slack_auth_ok", "opsbot_slack_socket_connected", "opsbot_outbox_oldest_pending_seconds", "opsbot_outbox_pending",
      "opsbot_deliveries_dead", "opsbot_alarm_to_page_seconds", "opsbot_scheduled_jobs_overdue_seconds",
      "opsbot_scheduled_jobs_given_up", "opsbot_intake_apply_failed", "opsbot_sns_unsubscribed", "RunningTaskCount", "DesiredTaskCount",
      "CPUUtilization", "MemoryUtilization", "RequestCount", "HTTPCode_ELB_5XX_Count", "HTTPCode_Target_5XX_Count",
      "TargetResponseTime", "HealthyHostCount", "ApproximateAgeOfOldestMessage",
    ])
    error_message = "The dashboard shows every opsbot_* metric and the ECS, load balancer and queue ones."
  }

  assert {
    condition     = length(one([for w in jsondecode(aws_cloudwatch_dashboard.service.dashboard_body).widgets : w.properties.alarms if w.type == "alarm"])) == 13
    error_message = "The dashboard's first row shows the paging alarms."
  }
}

run "edge_is_https_only_and_checks_healthz" {
  command = plan

  assert {
    condition     = aws_lb_listener.https.protocol == "HTTPS" && aws_lb_listener.https.certificate_arn == var.certificate_arn
    error_message = "The public listener must be HTTPS with the given certificate."
  }

  assert {
    condition     = aws_lb_listener.http.default_action[0].type == "redirect" && aws_lb_listener.http.default_action[0].redirect[0].protocol == "HTTPS"
    error_message = "Port 80 must only redirect to HTTPS."
  }

  assert {
    condition     = aws_lb_target_group.service.health_check[0].path == "/healthz"
    error_message = "The target group must check /healthz."
  }

  assert {
    condition     = toset(one(one(aws_lb_listener_rule.public_routes.condition).path_pattern).values) == toset(["/slack/events", "/sns", "/pagerduty/webhooks", "/healthz"])
    error_message = "Only the bot's public routes are forwarded."
  }

  assert {
    condition     = aws_ecs_service.service.deployment_circuit_breaker[0].enable && aws_ecs_service.service.deployment_circuit_breaker[0].rollback
    error_message = "Deployments must roll back by themselves when they fail."
  }

  assert {
    condition     = !aws_ecs_service.service.network_configuration[0].assign_public_ip
    error_message = "Tasks get no public address."
  }
}

run "access_log_bucket_is_private_and_encrypted" {
  command = plan

  assert {
    condition = (aws_s3_bucket_public_access_block.access_logs.block_public_acls && aws_s3_bucket_public_access_block.access_logs.block_public_policy
    && aws_s3_bucket_public_access_block.access_logs.ignore_public_acls && aws_s3_bucket_public_access_block.access_logs.restrict_public_buckets)
    error_message = "The access log bucket must block all public access."
  }

  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.access_logs.rule).apply_server_side_encryption_by_default).sse_algorithm == "AES256"
    error_message = "The access log bucket must be encrypted (SSE-S3: the only kind ALB log delivery supports)."
  }

  assert {
    condition     = aws_lb.main.access_logs[0].enabled && aws_lb.main.access_logs[0].bucket == aws_s3_bucket.access_logs.id
    error_message = "The ALB must write its access logs to the bucket."
  }

  assert {
    condition     = contains([for s in jsondecode(aws_s3_bucket_policy.access_logs.policy).Statement : s.Sid], "TLSOnly")
    error_message = "The log bucket must refuse plain HTTP."
  }
}

run "container_gets_its_settings_and_secrets" {
  command = plan

  assert {
    condition     = contains([for s in jsondecode(aws_ecs_task_definition.service.container_definitions)[0].secrets : s.name], "FF_CHECKOUT_V2")
    error_message = "SSM flags must be injected as FF_<FLAG>."
  }

  assert {
    condition = toset([for s in jsondecode(aws_ecs_task_definition.service.container_definitions)[0].secrets : s.name]) == toset([
      "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "PAGERDUTY_API_TOKEN", "PAGERDUTY_WEBHOOK_SECRETS",
      "DATABASE_URL", "FF_CHECKOUT_V2",
    ])
    error_message = "Secrets reach the container from Secrets Manager and SSM only."
  }

  assert {
    condition     = { for e in jsondecode(aws_ecs_task_definition.service.container_definitions)[0].environment : e.name => e.value }["OPSBOT_ALARM_QUEUE_URL"] == var.alarm_queue_url
    error_message = "The bot must be told its queue."
  }

  assert {
    condition = (
      { for e in jsondecode(aws_ecs_task_definition.service.container_definitions)[0].environment : e.name => e.value }["OPSBOT_EMF_NAMESPACE"] == "opsbot/test"
      && { for e in jsondecode(aws_ecs_task_definition.service.container_definitions)[0].environment : e.name => e.value }["OPSBOT_EMF_INTERVAL_S"] == "60"
    )
    error_message = "The bot writes its EMF lines in the namespace the alarms watch, every 60 s."
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.service.container_definitions)[0].readonlyRootFilesystem
    error_message = "The container's root filesystem is read-only."
  }

  assert {
    condition = (
      { for e in jsondecode(aws_ecs_task_definition.service.container_definitions)[0].environment : e.name => e.value }["PGSSLMODE"] == "verify-full"
      && { for e in jsondecode(aws_ecs_task_definition.service.container_definitions)[0].environment : e.name => e.value }["PGSSLROOTCERT"] == "/etc/ssl/certs/rds-global-bundle.pem"
    )
    error_message = "libpq must verify the database's certificate and host against the RDS CA bundle in the image."
  }
}

# Every deploy rolls Terraform's task definition back in (release_task_definition.py), so
# a setting the bot needs must be one the module can set: hand edits do not last.
run "topics_of_other_accounts_and_extra_settings_reach_the_container" {
  command = plan

  variables {
    sns_topic_arns = ["arn:aws:sns:eu-west-1:123456789012:opsbot-test-alarms", "arn:aws:sns:eu-west-1:999999999999:org-alarms"]
    sns_topic_accounts = {
      "arn:aws:sns:eu-west-1:999999999999:org-alarms"         = ["222222222222", "111111111111"]
      "arn:aws:sns:eu-west-1:123456789012:opsbot-test-alarms" = ["*"]
    }
    environment = { OPSBOT_LOG_LEVEL = "DEBUG", OPSBOT_ALARM_QUEUE_URL = "https://example.com/not-the-queue" }
  }

  assert {
    condition     = { for e in jsondecode(aws_ecs_task_definition.service.container_definitions)[0].environment : e.name => e.value }["OPSBOT_SNS_TOPIC_ACCOUNTS"] == "arn:aws:sns:eu-west-1:123456789012:opsbot-test-alarms=*,arn:aws:sns:eu-west-1:999999999999:org-alarms=222222222222,arn:aws:sns:eu-west-1:999999999999:org-alarms=111111111111"
    error_message = "sns_topic_accounts must reach the bot as OPSBOT_SNS_TOPIC_ACCOUNTS: <topic ARN>=<account> pairs, comma-separated."
  }

  assert {
    condition = (
      { for e in jsondecode(aws_ecs_task_definition.service.container_definitions)[0].environment : e.name => e.value }["OPSBOT_LOG_LEVEL"] == "DEBUG"
      && { for e in jsondecode(aws_ecs_task_definition.service.container_definitions)[0].environment : e.name => e.value }["OPSBOT_ALARM_QUEUE_URL"] == var.alarm_queue_url
    )
    error_message = "Extra settings reach the container, and never replace what the module sets."
  }
}

run "without_other_accounts_the_setting_is_unset" {
  command = plan

  assert {
    condition     = !contains([for e in jsondecode(aws_ecs_task_definition.service.container_definitions)[0].environment : e.name], "OPSBOT_SNS_TOPIC_ACCOUNTS")
    error_message = "Without sns_topic_accounts the bot keeps its default (each topic its own account's alarms)."
  }
}

run "topic_accounts_name_allowed_topics_only" {
  command = plan

  variables {
    sns_topic_accounts = { "arn:aws:sns:eu-west-1:999999999999:not-allowed" = ["111111111111"] }
  }

  expect_failures = [var.sns_topic_accounts]
}

# The entrypoint migrates before the bot listens, and a migration may take 10 minutes
# (bot/db/migrate.py): a task must not be killed as unhealthy before that.
run "health_checks_wait_for_a_migration" {
  command = plan

  assert {
    condition     = aws_ecs_service.service.health_check_grace_period_seconds >= 600 + 60
    error_message = "The service must ignore failing health checks for as long as a migration may run (600 s) and the bot takes to listen."
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.service.container_definitions)[0].healthCheck.startPeriod == 300
    error_message = "The container health check's start period is ECS's maximum (300 s)."
  }
}

run "without_deploy_targets_the_bot_only_reads_its_queue" {
  command = apply

  variables {
    self_deployable                 = false
    deployable_cluster_arns         = []
    deployable_service_arns         = []
    deployable_role_arns            = []
    deployable_repository_arns      = []
    flag_appconfig_application_arns = []
    flag_ssm_service_names          = []
    role_manager_function_arns      = []
  }

  assert {
    condition     = [for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Sid] == ["ConsumeAlarmQueue", "DecryptAlarmQueue", "ReadPinnedConfig", "DecryptConfig"]
    error_message = "With nothing to deploy, flip or provision, the task role reads its queue and its config and nothing else."
  }
}

# docs/operations.md sends operators to GET /metrics on the tasks and to `opsbot status`
# inside one. Both stay closed unless the environment opens them.
run "metrics_port_and_ecs_exec_are_closed_by_default" {
  command = plan

  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.tasks_metrics_from_security_groups) == 0 && length(aws_vpc_security_group_ingress_rule.tasks_metrics_from_cidrs) == 0
    error_message = "By default only the load balancer reaches the tasks."
  }

  assert {
    condition     = [for m in jsondecode(aws_ecs_task_definition.service.container_definitions)[0].portMappings : m.containerPort] == [3000]
    error_message = "By default the task maps the bot's port only."
  }

  assert {
    condition     = !contains([for e in jsondecode(aws_ecs_task_definition.service.container_definitions)[0].environment : e.name], "OPSBOT_METRICS_PORT")
    error_message = "By default the task definition leaves the metrics port to the image."
  }

  assert {
    condition     = !aws_ecs_service.service.enable_execute_command
    error_message = "ECS Exec is off by default."
  }

  assert {
    condition     = !anytrue([for a in flatten([for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Action]) : startswith(a, "ssmmessages:")])
    error_message = "Without ECS Exec the task role opens no SSM session channels."
  }

  assert {
    condition     = [for m in jsondecode(aws_ecs_task_definition.service.container_definitions)[0].mountPoints : m.containerPath] == ["/tmp"]
    error_message = "Without ECS Exec the container's only writable path is /tmp."
  }
}

run "metrics_port_and_ecs_exec_open_when_asked" {
  command = plan

  variables {
    metrics_ingress_security_group_ids = ["sg-prometheus"]
    metrics_ingress_cidrs              = ["10.20.0.0/16"]
    enable_execute_command             = true
  }

  assert {
    condition = (
      aws_vpc_security_group_ingress_rule.tasks_metrics_from_security_groups["sg-prometheus"].referenced_security_group_id == "sg-prometheus"
      && aws_vpc_security_group_ingress_rule.tasks_metrics_from_cidrs["10.20.0.0/16"].cidr_ipv4 == "10.20.0.0/16"
      && alltrue([
        for r in concat(values(aws_vpc_security_group_ingress_rule.tasks_metrics_from_security_groups), values(aws_vpc_security_group_ingress_rule.tasks_metrics_from_cidrs)) :
        r.from_port == 9100 && r.to_port == 9100 && r.ip_protocol == "tcp"
      ])
    )
    error_message = "The named scrapers reach the metrics port (9100) of the tasks, and nothing else new."
  }

  assert {
    condition = (
      [for m in jsondecode(aws_ecs_task_definition.service.container_definitions)[0].portMappings : m.containerPort] == [3000, 9100]
      && { for e in jsondecode(aws_ecs_task_definition.service.container_definitions)[0].environment : e.name => e.value }["OPSBOT_METRICS_PORT"] == "9100"
    )
    error_message = "The bot serves its metrics on the port the security group opens."
  }

  assert {
    condition     = aws_ecs_service.service.enable_execute_command
    error_message = "enable_execute_command turns ECS Exec on."
  }

  assert {
    condition = toset(one([for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Action if s.Sid == "EcsExecSessions"])) == toset([
      "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
    ])
    error_message = "With ECS Exec the task role opens the SSM agent's session channels."
  }

  assert {
    condition = length(setsubtract(
      toset(flatten([for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Action])),
      toset(run.the_environments_permissions_boundary.actions),
    )) == 0
    error_message = "The ECS Exec channels must be inside the permissions boundary, or the agent is denied them."
  }

  assert {
    condition = (
      jsondecode(aws_ecs_task_definition.service.container_definitions)[0].readonlyRootFilesystem
      && toset([for m in jsondecode(aws_ecs_task_definition.service.container_definitions)[0].mountPoints : m.containerPath]) == toset(["/tmp", "/var/lib/amazon/ssm", "/var/log/amazon/ssm", "/managed-agents"])
      && toset([for v in aws_ecs_task_definition.service.volume : v.name]) == toset(["tmp", "ssm-agent-state", "ssm-agent-logs", "managed-agents"])
    )
    error_message = "The root filesystem stays read-only; the SSM agent gets scratch volumes where it writes."
  }
}

run "metrics_ingress_names_its_scrapers" {
  command = plan

  variables {
    metrics_ingress_cidrs = ["0.0.0.0/0"]
    metrics_port          = 3000
  }

  expect_failures = [var.metrics_ingress_cidrs, var.metrics_port]
}
