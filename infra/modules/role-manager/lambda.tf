data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  # The package's copy of Amazon RDS's CA bundle (infra/lambda/build_role_manager.py);
  # /var/task is where Lambda unpacks it.
  ca_bundle_name = "rds-global-bundle.pem"

  environment = { for k, v in {
    DB_HOST                      = var.db_host
    DB_PORT                      = tostring(var.db_port)
    DB_NAME                      = var.db_name
    DB_SSLMODE                   = var.db_sslmode
    PGSSLROOTCERT                = "/var/task/${local.ca_bundle_name}"
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
  kms_key_arn      = module.kms.arn

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

module "kms" {
  source = "../kms-key"

  description            = "${var.name} environment variables and logs"
  alias                  = var.name
  log_group_name_pattern = "/aws/lambda/${var.name}"
}

# The key was created here before modules/kms-key existed: move it, never replace it.
moved {
  from = aws_kms_key.role_manager
  to   = module.kms.aws_kms_key.this
}

resource "aws_cloudwatch_log_group" "role_manager" {
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.kms.arn
}
