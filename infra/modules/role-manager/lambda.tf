data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  environment = { for k, v in {
    DB_HOST                      = var.db_host
    DB_PORT                      = tostring(var.db_port)
    DB_NAME                      = var.db_name
    DB_SSLMODE                   = var.db_sslmode
    MASTER_SECRET_ARN            = var.master_secret_arn
    SCHEMA_NAME                  = var.schema_name
    MIGRATOR_ROLE                = var.migrator_role
    APP_ROLE                     = var.app_role
    MIGRATOR_PASSWORD_SECRET_ARN = var.migrator_password_secret_arn
    APP_PASSWORD_SECRET_ARN      = var.app_password_secret_arn
    CONNECT_TIMEOUT_S            = "10"
  } : k => v if v != null }

  password_secret_arns = compact([var.migrator_password_secret_arn, var.app_password_secret_arn])
}

# The package is a zip built before plan by infra/lambda/build-role-manager (the code
# plus psycopg's Linux wheels). It is not built by Terraform because the hashicorp/archive
# provider is not available offline, and because pip must run to vendor psycopg anyway.
resource "aws_lambda_function" "role_manager" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously by the bot, which shows the error to the person who asked; a DLQ only applies to async invocations.
  #checkov:skip=CKV_AWS_50:The function runs in private subnets with no route to X-Ray; each invocation logs its full result instead.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile; the package is built from reviewed source by CI and its hash is pinned by source_code_hash.
  function_name    = var.name
  description      = "Creates and checks the database roles of ${var.db_name} (schema ${var.schema_name})"
  role             = aws_iam_role.role_manager.arn
  runtime          = "python3.11"
  handler          = "role_manager.handler"
  architectures    = ["x86_64"]
  filename         = var.package_path
  source_code_hash = filebase64sha256(var.package_path)
  timeout          = 60
  memory_size      = 256
  kms_key_arn      = aws_kms_key.role_manager.arn

  # One invocation at a time: role changes are serialised, and a burst of /dbrole
  # commands cannot open a burst of master-user connections.
  reserved_concurrent_executions = 1

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [aws_security_group.role_manager.id]
  }

  environment {
    variables = local.environment
  }

  depends_on = [aws_cloudwatch_log_group.role_manager, aws_iam_role_policy.role_manager]
}

resource "aws_kms_key" "role_manager" {
  description         = "${var.name} environment variables and logs"
  enable_key_rotation = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncryptsFunctionLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.${data.aws_region.current.name}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${data.aws_region.current.name}:${local.account_id}:log-group:/aws/lambda/${var.name}"
          }
        }
      },
    ]
  })
}

resource "aws_cloudwatch_log_group" "role_manager" {
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.role_manager.arn
}
