# Two roles. The execution role is what ECS uses to start the task (pull the image,
# read the secrets, write logs); the task role is what the bot itself calls AWS with.
# Both are inline policies built with jsonencode so `terraform test` can read them back.

locals {
  ecs_tasks_trust = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = { "aws:SourceAccount" = local.account_id }
        ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:*" }
      }
    }]
  })
}

resource "aws_iam_role" "execution" {
  name                 = "${var.name}-execution"
  description          = "ECS starts ${var.name} tasks with this role"
  assume_role_policy   = local.ecs_tasks_trust
  permissions_boundary = var.permissions_boundary_arn
}

resource "aws_iam_role_policy" "execution" {
  name = "start-task"
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      {
        Sid      = "EcrLogin"
        Effect   = "Allow"
        Action   = "ecr:GetAuthorizationToken" # has no resource-level permissions
        Resource = "*"
      },
      {
        Sid      = "PullImage"
        Effect   = "Allow"
        Action   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
        Resource = var.image_repository_arn
      },
      {
        Sid      = "WriteLogs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = "${aws_cloudwatch_log_group.service.arn}:*"
      },
      {
        Sid      = "ReadSecrets"
        Effect   = "Allow"
        Action   = "secretsmanager:GetSecretValue"
        Resource = [aws_secretsmanager_secret.app.arn, var.database_url_secret_arn]
      },
      {
        Sid      = "DecryptSecretsAndParameters"
        Effect   = "Allow"
        Action   = "kms:Decrypt"
        Resource = compact([module.kms.arn, var.database_secret_kms_key_arn, var.image_kms_key_arn])
      },
      ],
      # SSM feature flags injected at start (FF_<flag>). The config parameter is read by
      # the task itself, at the version its task definition pins (task-definition.tf).
      length(var.feature_flag_parameter_arns) == 0 ? [] : [{
        Sid      = "ReadFlagParameters"
        Effect   = "Allow"
        Action   = "ssm:GetParameters"
        Resource = values(var.feature_flag_parameter_arns)
      }],
    )
  })
}

locals {
  # With self_deployable the bot may also roll itself (`/deploy opsbot ...`); the
  # deployment circuit breaker rolls a bad release back.
  own_cluster_arn = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:cluster/${var.name}"
  own_service_arn = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:service/${var.name}/${var.name}"

  deployable_cluster_arns    = distinct(concat(var.deployable_cluster_arns, var.self_deployable ? [local.own_cluster_arn] : []))
  deployable_service_arns    = distinct(concat(var.deployable_service_arns, var.self_deployable ? [local.own_service_arn] : []))
  deployable_role_arns       = distinct(concat(var.deployable_role_arns, var.self_deployable ? [aws_iam_role.task.arn, aws_iam_role.execution.arn] : []))
  deployable_repository_arns = distinct(concat(var.deployable_repository_arns, var.self_deployable ? [var.image_repository_arn] : []))

  # ECS task ARNs are arn:...:task/<cluster-name>/<id>: derive them from the clusters.
  deployable_task_arns = [for arn in local.deployable_cluster_arns : "${replace(arn, ":cluster/", ":task/")}/*"]

  ssm_flag_parameter_arns = [
    for service in var.flag_ssm_service_names :
    "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/service/${service}/feature-flag/*"
  ]
  # AppConfig: the application and everything under it (environments, profiles,
  # hosted versions, deployments), plus the account's deployment strategies.
  appconfig_arns = flatten([
    for app_arn in var.flag_appconfig_application_arns : [app_arn, "${app_arn}/*"]
  ])

  # Groups of statements; a group whose targets are empty is left out (IAM refuses a
  # statement with an empty Resource).
  statement_groups = [
    {
      enabled = true
      statements = [
        {
          Sid      = "ConsumeAlarmQueue"
          Effect   = "Allow"
          Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
          Resource = var.alarm_queue_arn
        },
        {
          Sid      = "DecryptAlarmQueue"
          Effect   = "Allow"
          Action   = "kms:Decrypt"
          Resource = var.alarm_queue_kms_key_arn
        },
        {
          # The entrypoint reads the config at the version the task definition pins
          # (OPSBOT_CONFIG_PARAMETER:OPSBOT_CONFIG_VERSION): ECS cannot select an SSM
          # parameter version in `secrets`, so the task does it.
          Sid      = "ReadPinnedConfig"
          Effect   = "Allow"
          Action   = "ssm:GetParameter"
          Resource = aws_ssm_parameter.config.arn
        },
        {
          Sid       = "DecryptConfig"
          Effect    = "Allow"
          Action    = "kms:Decrypt"
          Resource  = module.kms.arn
          Condition = { StringEquals = { "kms:ViaService" = "ssm.${local.region}.amazonaws.com" } }
        },
      ]
    },
    {
      enabled = length(local.deployable_service_arns) > 0
      statements = [
        {
          Sid      = "RollDeployableServices"
          Effect   = "Allow"
          Action   = ["ecs:DescribeServices", "ecs:UpdateService"]
          Resource = local.deployable_service_arns
        },
        {
          # Task definitions have no resource-level permissions for these calls.
          Sid      = "RegisterTaskDefinitions"
          Effect   = "Allow"
          Action   = ["ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition"]
          Resource = "*"
        },
        {
          # A new revision keeps its predecessor's tags (bot/adapters/ecs.py): tagging on
          # create is authorised separately, and only for that call.
          Sid       = "TagTaskDefinitionsOnRegister"
          Effect    = "Allow"
          Action    = "ecs:TagResource"
          Resource  = "*"
          Condition = { StringEquals = { "ecs:CreateAction" = "RegisterTaskDefinition" } }
        },
        {
          Sid       = "ListTasksOfDeployableClusters"
          Effect    = "Allow"
          Action    = "ecs:ListTasks"
          Resource  = "*"
          Condition = { ArnEquals = { "ecs:cluster" = local.deployable_cluster_arns } }
        },
        {
          Sid      = "DescribeTasksOfDeployableClusters"
          Effect   = "Allow"
          Action   = "ecs:DescribeTasks"
          Resource = local.deployable_task_arns
        },
        {
          Sid       = "PassDeployableServiceRoles"
          Effect    = "Allow"
          Action    = "iam:PassRole"
          Resource  = local.deployable_role_arns
          Condition = { StringEquals = { "iam:PassedToService" = "ecs-tasks.amazonaws.com" } }
        },
      ]
    },
    {
      enabled = length(local.deployable_repository_arns) > 0
      statements = [
        {
          Sid      = "ReadDeployableImages"
          Effect   = "Allow"
          Action   = ["ecr:DescribeRepositories", "ecr:DescribeImages", "ecr:DescribeImageScanFindings"]
          Resource = local.deployable_repository_arns
        },
      ]
    },
    {
      enabled = length(var.flag_appconfig_application_arns) > 0
      statements = [
        {
          Sid    = "FlipAppConfigFlags"
          Effect = "Allow"
          Action = [
            "appconfig:GetConfigurationProfile",
            "appconfig:ListHostedConfigurationVersions",
            "appconfig:GetHostedConfigurationVersion",
            "appconfig:CreateHostedConfigurationVersion",
            "appconfig:StartDeployment",
            "appconfig:GetDeployment",
            "appconfig:ListDeployments",
          ]
          Resource = local.appconfig_arns
        },
        {
          # StartDeployment is also authorised on the strategy it names; strategies
          # live outside applications (and AWS's predefined ones are shared).
          Sid      = "DeployWithStrategies"
          Effect   = "Allow"
          Action   = "appconfig:StartDeployment"
          Resource = "arn:${local.partition}:appconfig:${local.region}:${local.account_id}:deploymentstrategy/*"
        },
      ]
    },
    {
      enabled = length(var.flag_ssm_service_names) > 0
      statements = [
        {
          Sid    = "FlipSsmFlags"
          Effect = "Allow"
          # List the flags, read one and who wrote each last, overwrite one.
          Action   = ["ssm:GetParametersByPath", "ssm:GetParameter", "ssm:GetParameterHistory", "ssm:PutParameter"]
          Resource = local.ssm_flag_parameter_arns
        },
      ]
    },
    {
      enabled = length(var.role_manager_function_arns) > 0
      statements = [
        {
          Sid      = "InvokeRoleManagers"
          Effect   = "Allow"
          Action   = "lambda:InvokeFunction"
          Resource = var.role_manager_function_arns
        },
      ]
    },
    {
      # ECS Exec: the SSM agent ECS runs beside the bot opens its session channels
      # with the task role. The channels have no resource-level permissions.
      enabled = var.enable_execute_command
      statements = [
        {
          Sid    = "EcsExecSessions"
          Effect = "Allow"
          Action = [
            "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
            "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
          ]
          Resource = "*"
        },
      ]
    },
  ]

  task_statements = flatten([for g in local.statement_groups : g.statements if g.enabled])
}

resource "aws_iam_role" "task" {
  name                 = "${var.name}-task"
  description          = "What the running bot may do in AWS"
  assume_role_policy   = local.ecs_tasks_trust
  permissions_boundary = var.permissions_boundary_arn
}

resource "aws_iam_role_policy" "task" {
  name = "opsbot"
  role = aws_iam_role.task.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = local.task_statements
  })
}
