# The permissions boundary of one environment's IAM roles (<name>-*): the most any of
# them may ever do, whatever its own policies say. The GitHub deploy role of that
# environment manages those roles (modules/github-oidc), so without a cap it could give
# one of them any policy and any trust, assume it, and step outside its own permissions.
# It may only create and change roles that carry this boundary, and cannot change the
# boundary (infra/bootstrap makes it, with an administrator's credentials).
#
# The boundary grants what the stack's roles do today, action by action, and no IAM but
# iam:PassRole of the environment's own (bounded) roles to ECS tasks. The roles' own
# policies scope the resources; the boundary scopes the actions. A role that needs a new
# action needs it here first: apply infra/bootstrap, then the environment.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # By role, as each module grants it; each module's test checks its role against this.
  actions_by_role = {
    # modules/service: ECS starts the task (image, logs, secrets, SSM flags).
    service_execution = [
      "ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability",
      "logs:CreateLogStream", "logs:PutLogEvents",
      "secretsmanager:GetSecretValue", "kms:Decrypt", "ssm:GetParameters",
    ]
    # modules/service: the bot (docs/infrastructure.md, "The bot's permissions"); its
    # iam:PassRole is the statement below.
    service_task = [
      "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
      "kms:Decrypt",
      "ssm:GetParameter", "ssm:GetParametersByPath", "ssm:GetParameterHistory", "ssm:PutParameter",
      "ecs:DescribeServices", "ecs:UpdateService", "ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition",
      "ecs:ListTasks", "ecs:DescribeTasks", "ecs:TagResource",
      "ecr:DescribeRepositories", "ecr:DescribeImages", "ecr:DescribeImageScanFindings",
      "appconfig:GetConfigurationProfile", "appconfig:ListHostedConfigurationVersions",
      "appconfig:GetHostedConfigurationVersion", "appconfig:CreateHostedConfigurationVersion",
      "appconfig:StartDeployment", "appconfig:GetDeployment", "appconfig:ListDeployments",
      "lambda:InvokeFunction",
    ]
    # modules/service with enable_execute_command: ECS Exec's agent opens its session
    # channels with the task role.
    service_exec = [
      "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
      "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
    ]
    # modules/role-manager: logs, the VPC network interfaces Lambda manages, the secrets.
    role_manager = [
      "logs:CreateLogStream", "logs:PutLogEvents",
      "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
      "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
      "secretsmanager:GetSecretValue", "kms:Decrypt",
    ]
    # modules/network: VPC flow logs.
    vpc_flow_logs = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    # modules/database: RDS enhanced monitoring, AWS's AmazonRDSEnhancedMonitoringRole.
    rds_monitoring = [
      "logs:CreateLogGroup", "logs:PutRetentionPolicy",
      "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams", "logs:GetLogEvents",
    ]
    # modules/feature-flags: AppConfig reads the rollback alarms.
    appconfig_monitor = ["cloudwatch:DescribeAlarms"]
  }
  actions = sort(distinct(flatten(values(local.actions_by_role))))

  # The AWS managed policies a stack role may attach (their actions are listed above).
  managed_policy_arns = ["arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"]

  # Passing a role hands its permissions over: only the environment's own roles (which
  # carry this boundary) and the roles an administrator listed, and only to ECS tasks.
  passable_role_arns = concat(["arn:${local.partition}:iam::${local.account_id}:role/${var.name}-*"], var.passable_role_arns)

  # The other environments' resources, by name, in the services the roles act on
  # (the roles' own policies name their environment's resources; this holds even for
  # a policy the GitHub deploy role rewrote).
  other_environments_arns = flatten([
    for n in var.other_environment_names : [
      "arn:${local.partition}:ecs:*:${local.account_id}:cluster/${n}",
      "arn:${local.partition}:ecs:*:${local.account_id}:service/${n}/*",
      "arn:${local.partition}:ecs:*:${local.account_id}:task/${n}/*",
      "arn:${local.partition}:ecs:*:${local.account_id}:task-definition/${n}:*",
      "arn:${local.partition}:secretsmanager:*:${local.account_id}:secret:${n}/*",
      "arn:${local.partition}:ssm:*:${local.account_id}:parameter/${n}/*",
      "arn:${local.partition}:lambda:*:${local.account_id}:function:${n}-*",
      "arn:${local.partition}:sqs:*:${local.account_id}:${n}-*",
      "arn:${local.partition}:logs:*:${local.account_id}:log-group:*${n}",
      "arn:${local.partition}:logs:*:${local.account_id}:log-group:*${n}:*",
      "arn:${local.partition}:logs:*:${local.account_id}:log-group:*${n}/*",
      "arn:${local.partition}:logs:*:${local.account_id}:log-group:*${n}-*",
      "arn:${local.partition}:iam::${local.account_id}:role/${n}-*",
    ]
  ])
  other_environments_statements = [for s in [
    {
      Sid      = "NothingNamedForAnotherEnvironment"
      Effect   = "Deny"
      Action   = "*"
      Resource = local.other_environments_arns
    },
    {
      Sid      = "NoOtherEnvironmentsKeys"
      Effect   = "Deny"
      Action   = "kms:*"
      Resource = "*"
      Condition = {
        "ForAnyValue:StringLike" = { "kms:ResourceAliases" = [for n in var.other_environment_names : "alias/${n}-*"] }
      }
    },
    {
      # RDS-managed master secrets are named rds!cluster-<id>, tagged with their cluster.
      Sid      = "NoOtherEnvironmentsMasterSecrets"
      Effect   = "Deny"
      Action   = "secretsmanager:*"
      Resource = "*"
      Condition = {
        "ForAnyValue:StringLike" = { "aws:ResourceTag/aws:rds:primaryDBClusterArn" = [for n in var.other_environment_names : "arn:${local.partition}:rds:*:${local.account_id}:cluster:${n}"] }
      }
    },
  ] : s if length(var.other_environment_names) > 0]
}

resource "aws_iam_policy" "this" {
  name        = "${var.name}-permissions-boundary"
  description = "The most any ${var.name}-* role may do; the GitHub deploy role may only create and change roles that carry it."
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      {
        Sid      = "WhatTheStackRolesDo"
        Effect   = "Allow"
        Action   = local.actions
        Resource = "*"
      },
      {
        Sid       = "PassOnlyBoundedOrListedRolesToEcsTasks"
        Effect    = "Allow"
        Action    = "iam:PassRole"
        Resource  = local.passable_role_arns
        Condition = { StringEquals = { "iam:PassedToService" = "ecs-tasks.amazonaws.com" } }
      },
    ], local.other_environments_statements)
  })
}
