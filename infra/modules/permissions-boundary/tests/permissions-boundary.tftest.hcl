# The boundary of an environment's roles: exactly the actions the stack's roles use, no
# IAM but passing the environment's own roles to ECS tasks. The modules that make the
# roles (service, role-manager, network, database, feature-flags) check in their own
# tests that their roles fit inside it.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_iam_policy" {
    defaults = { arn = "arn:aws:iam::123456789012:policy/opsbot-test-permissions-boundary" }
  }
}

variables {
  name = "opsbot-test"
}

run "the_boundary_allows_exactly_what_the_stack_roles_do" {
  command = apply

  assert {
    condition     = aws_iam_policy.this.name == "opsbot-test-permissions-boundary"
    error_message = "The boundary is named <name>-permissions-boundary: modules/environment and modules/github-oidc derive its ARN from that."
  }

  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_policy.this.policy).Statement : s.Action])) == toset([
      "ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability",
      "ecr:DescribeRepositories", "ecr:DescribeImages", "ecr:DescribeImageScanFindings",
      "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams", "logs:CreateLogGroup",
      "logs:PutRetentionPolicy", "logs:GetLogEvents",
      "secretsmanager:GetSecretValue", "kms:Decrypt",
      "ssm:GetParameters", "ssm:GetParameter", "ssm:GetParametersByPath", "ssm:GetParameterHistory", "ssm:PutParameter",
      "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
      "ecs:DescribeServices", "ecs:UpdateService", "ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition",
      "ecs:ListTasks", "ecs:DescribeTasks", "ecs:TagResource",
      "appconfig:GetConfigurationProfile", "appconfig:ListHostedConfigurationVersions",
      "appconfig:GetHostedConfigurationVersion", "appconfig:CreateHostedConfigurationVersion",
      "appconfig:StartDeployment", "appconfig:GetDeployment", "appconfig:ListDeployments",
      "lambda:InvokeFunction",
      "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
      "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
      "cloudwatch:DescribeAlarms",
      "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
      "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
      "iam:PassRole",
    ])
    error_message = "The boundary's actions differ from what the stack's roles do (docs/infrastructure.md)."
  }

  assert {
    condition     = toset(output.actions) == toset(flatten([for s in jsondecode(aws_iam_policy.this.policy).Statement : s.Action]))
    error_message = "The actions output (which the roles' tests check against) must be the policy's."
  }

  assert {
    condition     = alltrue([for a in output.actions : !strcontains(a, "*") && !startswith(a, "sts:") && (a == "iam:PassRole" || !startswith(a, "iam:"))])
    error_message = "No wildcard actions, no STS, and no IAM but iam:PassRole: a bounded role can never change IAM or assume another role."
  }

  assert {
    condition     = alltrue([for s in jsondecode(aws_iam_policy.this.policy).Statement : s.Effect == "Allow" && !contains(keys(s), "NotAction") && !contains(keys(s), "NotResource")])
    error_message = "Only plain Allow statements: anything not listed is outside the boundary."
  }

  assert {
    condition = one([
      for s in jsondecode(aws_iam_policy.this.policy).Statement : s.Resource if s.Action == "iam:PassRole"
    ]) == ["arn:aws:iam::123456789012:role/opsbot-test-*"]
    error_message = "Without passable_role_arns, only the environment's own (bounded) roles may be passed."
  }

  assert {
    condition = one([
      for s in jsondecode(aws_iam_policy.this.policy).Statement : s.Condition.StringEquals["iam:PassedToService"] if s.Action == "iam:PassRole"
    ]) == "ecs-tasks.amazonaws.com"
    error_message = "Roles may be passed to ECS tasks only."
  }
}

run "listed_roles_of_other_services_may_be_passed" {
  command = plan

  variables {
    passable_role_arns = ["arn:aws:iam::123456789012:role/shop-web-task"]
  }

  assert {
    condition = one([
      for s in jsondecode(aws_iam_policy.this.policy).Statement : s.Resource if s.Action == "iam:PassRole"
    ]) == ["arn:aws:iam::123456789012:role/opsbot-test-*", "arn:aws:iam::123456789012:role/shop-web-task"]
    error_message = "passable_role_arns are added to the environment's own roles."
  }
}

run "a_wildcard_passable_role_is_refused" {
  command = plan

  variables {
    passable_role_arns = ["arn:aws:iam::123456789012:role/*"]
  }

  expect_failures = [var.passable_role_arns]
}

# Two environments in one account: a staging role whose own policy a deploy role
# rewrote must still never reach prod's secrets, parameters, service, function, queue,
# logs, keys or roles.
run "the_other_environments_resources_are_out_of_reach" {
  command = plan

  variables {
    other_environment_names = ["opsbot-prod"]
  }

  assert {
    condition = alltrue([
      for arn in [
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:opsbot-prod/app-AbCdEf",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:opsbot-prod/database-login-AbCdEf",
        "arn:aws:ssm:eu-west-1:123456789012:parameter/opsbot-prod/config",
        "arn:aws:ecs:eu-west-1:123456789012:service/opsbot-prod/opsbot-prod",
        "arn:aws:ecs:eu-west-1:123456789012:task-definition/opsbot-prod:7",
        "arn:aws:ecs:eu-west-1:123456789012:task/opsbot-prod/0123456789abcdef",
        "arn:aws:lambda:eu-west-1:123456789012:function:opsbot-prod-role-manager",
        "arn:aws:sqs:eu-west-1:123456789012:opsbot-prod-alarms",
        "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/opsbot-prod:*",
        "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/opsbot-prod-role-manager:log-stream:x",
        "arn:aws:iam::123456789012:role/opsbot-prod-task",
      ] :
      anytrue([
        for pattern in one([for s in jsondecode(aws_iam_policy.this.policy).Statement : s.Resource if s.Sid == "NothingNamedForAnotherEnvironment"]) :
        can(regex("^${replace(pattern, "*", ".*")}$", arn))
      ])
    ])
    error_message = "Every resource the other environment's modules name is denied."
  }

  assert {
    condition = !anytrue(flatten([
      for arn in [
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:opsbot-test/app-AbCdEf",
        "arn:aws:ssm:eu-west-1:123456789012:parameter/opsbot-test/config",
        "arn:aws:ecs:eu-west-1:123456789012:service/opsbot-test/opsbot-test",
        "arn:aws:lambda:eu-west-1:123456789012:function:opsbot-test-role-manager",
        "arn:aws:sqs:eu-west-1:123456789012:opsbot-test-alarms",
        "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/opsbot-test:*",
        "arn:aws:iam::123456789012:role/opsbot-test-task",
        "arn:aws:ecs:eu-west-1:123456789012:service/shop/web",
        ] : [
        for pattern in one([for s in jsondecode(aws_iam_policy.this.policy).Statement : s.Resource if s.Sid == "NothingNamedForAnotherEnvironment"]) :
        can(regex("^${replace(pattern, "*", ".*")}$", arn))
      ]
    ]))
    error_message = "The environment's own resources, and other services', stay within reach."
  }

  assert {
    condition = (
      one([for s in jsondecode(aws_iam_policy.this.policy).Statement : s.Condition["ForAnyValue:StringLike"]["kms:ResourceAliases"] if s.Sid == "NoOtherEnvironmentsKeys"]) == ["alias/opsbot-prod-*"]
      && one([for s in jsondecode(aws_iam_policy.this.policy).Statement : s.Condition["ForAnyValue:StringLike"]["aws:ResourceTag/aws:rds:primaryDBClusterArn"] if s.Sid == "NoOtherEnvironmentsMasterSecrets"]) == ["arn:aws:rds:*:123456789012:cluster:opsbot-prod"]
    )
    error_message = "The other environment's KMS keys (by alias) and its RDS-managed master secret (by cluster) are denied."
  }

  assert {
    condition     = alltrue([for s in jsondecode(aws_iam_policy.this.policy).Statement : s.Effect == "Deny" if !contains(["WhatTheStackRolesDo", "PassOnlyBoundedOrListedRolesToEcsTasks"], s.Sid)])
    error_message = "The other environments only add denies: the boundary allows nothing more."
  }

  assert {
    condition     = toset(output.actions) == toset(flatten([for s in jsondecode(aws_iam_policy.this.policy).Statement : s.Action if s.Effect == "Allow"]))
    error_message = "The actions the boundary allows stay the same."
  }

  # A managed policy holds at most 6,144 characters.
  assert {
    condition     = length(aws_iam_policy.this.policy) < 6144
    error_message = "The boundary outgrows a managed policy."
  }
}

run "an_environment_cannot_be_its_own_other" {
  command = plan

  variables {
    other_environment_names = ["opsbot-test"]
  }

  expect_failures = [var.other_environment_names]
}
