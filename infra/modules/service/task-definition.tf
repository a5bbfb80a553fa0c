locals {
  container_name = "opsbot"
  # How long a task may take to answer /healthz: its migration (bot/db/migrate.py,
  # MIGRATION_STATEMENT_TIMEOUT_S, 10 minutes) and a minute to start serving.
  startup_allowance_s = 600 + 60
  config_path         = "/tmp/opsbot/config.yaml"

  environment = merge(
    var.environment,
    {
      PORT                            = tostring(var.container_port)
      AWS_REGION                      = local.region
      OPSBOT_CONFIG                   = local.config_path
      OPSBOT_ALARM_QUEUE_URL          = var.alarm_queue_url
      OPSBOT_SNS_TOPIC_ARNS           = join(",", var.sns_topic_arns)
      OPSBOT_ALARM_QUEUE_RAW_DELIVERY = tostring(var.alarm_queue_raw_delivery)
      # libpq's defaults for what DATABASE_URL leaves unsaid: verify the database's
      # certificate against the RDS CA bundle in the image. A URL still saying
      # sslmode=require (written before verify-full) then verifies the CA too.
      PGSSLMODE     = "verify-full"
      PGSSLROOTCERT = var.database_ca_bundle_path
      # The numbers the alarms in alarms.tf watch (CloudWatch Embedded Metric Format).
      OPSBOT_EMF_NAMESPACE  = var.emf_namespace
      OPSBOT_EMF_INTERVAL_S = tostring(var.emf_interval_s)
      # The config version this revision runs: the entrypoint reads
      # <parameter>:<version>, and the bot reports the version.
      OPSBOT_CONFIG_PARAMETER = aws_ssm_parameter.config.name
      OPSBOT_CONFIG_VERSION   = tostring(aws_ssm_parameter.config.version)
    },
    # The other accounts a topic may carry alarms of: one <topic ARN>=<account> pair per
    # account. Unset when none, as the bot's default says the same.
    { for k, v in { OPSBOT_SNS_TOPIC_ACCOUNTS = local.sns_topic_accounts } : k => v if v != "" },
    # The port the tasks' security group opens to the scrapers; without any, the
    # revision stays as it was (the image's own default).
    { for k, v in { OPSBOT_METRICS_PORT = tostring(var.metrics_port) } : k => v if local.metrics_reachable },
  )

  sns_topic_accounts = join(",", flatten([
    for topic in sort(keys(var.sns_topic_accounts)) : [for account in var.sns_topic_accounts[topic] : "${topic}=${account}"]
  ]))

  metrics_reachable = length(var.metrics_ingress_security_group_ids) + length(var.metrics_ingress_cidrs) > 0
  port_mappings = concat(
    [{ containerPort = var.container_port, protocol = "tcp" }],
    local.metrics_reachable ? [{ containerPort = var.metrics_port, protocol = "tcp" }] : [],
  )

  # The root filesystem is read-only, and ECS Exec's SSM agent writes its state and
  # logs under these paths in the container: they get scratch volumes when Exec is on.
  exec_agent_paths = {
    for name, path in {
      ssm-agent-state = "/var/lib/amazon/ssm"
      ssm-agent-logs  = "/var/log/amazon/ssm"
      managed-agents  = "/managed-agents"
    } : name => path if var.enable_execute_command
  }

  secrets = concat(
    [for key in var.app_secret_keys : { name = key, valueFrom = "${aws_secretsmanager_secret.app.arn}:${key}::" }],
    [
      { name = "DATABASE_URL", valueFrom = "${var.database_url_secret_arn}:url::" },
    ],
    # SSM-backed feature flags of this service, read at task start.
    [for flag, arn in var.feature_flag_parameter_arns : { name = "FF_${flag}", valueFrom = arn }],
  )
}

resource "aws_ecs_task_definition" "service" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  # Replaced revisions stay registered: a service can only be rolled back to an ACTIVE
  # revision, and each revision pins a config version.
  skip_destroy = true

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  # The root filesystem is read-only; the config file and Python's temp files go here.
  volume {
    name = "tmp"
  }

  dynamic "volume" {
    for_each = local.exec_agent_paths
    content {
      name = volume.key
    }
  }

  container_definitions = jsonencode([{
    name                   = local.container_name
    image                  = "${var.image_repository_url}:${var.image_tag}"
    essential              = true
    readonlyRootFilesystem = true
    portMappings           = local.port_mappings
    environment            = [for k in sort(keys(local.environment)) : { name = k, value = local.environment[k] }]
    secrets                = local.secrets
    mountPoints = concat(
      [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }],
      [for name, path in local.exec_agent_paths : { sourceVolume = name, containerPath = path, readOnly = false }],
    )
    linuxParameters = { initProcessEnabled = true }
    stopTimeout     = 30
    healthCheck = {
      command  = ["CMD", "python", "-c", "import os,urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=3)"]
      interval = 15
      timeout  = 5
      retries  = 3
      # ECS's maximum; the service's grace period (startup_allowance_s) covers the rest.
      startPeriod = 300
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "opsbot"
      }
    }
  }])
}
