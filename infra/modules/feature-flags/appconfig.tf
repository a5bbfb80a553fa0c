# Backend "appconfig": AWS AppConfig feature flags, AWS's named successor of Evidently.
# Terraform creates the containers and the first version of the flags (all off);
# after that the bot writes new hosted versions and deploys them with the strategy.
locals {
  use_appconfig = var.backend == "appconfig"
  use_ssm       = var.backend == "ssm"

  # The AWS.AppConfig.FeatureFlags document format.
  initial_flags_document = jsonencode({
    version = "1"
    flags   = { for f in var.flags : f => { name = f } }
    values  = { for f in var.flags : f => { enabled = false } }
  })
}

resource "aws_appconfig_application" "flags" {
  count = local.use_appconfig ? 1 : 0

  name        = var.service_name
  description = "Feature flags of ${var.service_name}"
}

resource "aws_appconfig_environment" "flags" {
  count = local.use_appconfig ? 1 : 0

  name           = var.environment_name
  application_id = aws_appconfig_application.flags[0].id
  description    = "${var.service_name} ${var.environment_name}"

  # A flag deployment rolls back by itself when one of these alarms fires while it bakes.
  dynamic "monitor" {
    for_each = var.rollback_alarm_arns
    content {
      alarm_arn      = monitor.value
      alarm_role_arn = aws_iam_role.appconfig_monitor[0].arn
    }
  }
}

resource "aws_appconfig_configuration_profile" "flags" {
  count = local.use_appconfig ? 1 : 0

  name               = "feature-flags"
  application_id     = aws_appconfig_application.flags[0].id
  location_uri       = "hosted"
  type               = "AWS.AppConfig.FeatureFlags"
  kms_key_identifier = var.kms_key_arn
}

resource "aws_appconfig_deployment_strategy" "flags" {
  count = local.use_appconfig ? 1 : 0

  name                           = "${var.service_name}-${var.environment_name}-flags"
  description                    = "Linear rollout of ${var.service_name} flags, then bake"
  deployment_duration_in_minutes = var.deployment_duration_minutes
  growth_factor                  = 100 / max(1, var.deployment_steps)
  growth_type                    = "LINEAR"
  final_bake_time_in_minutes     = var.final_bake_minutes
  replicate_to                   = "NONE"
}

resource "aws_appconfig_hosted_configuration_version" "initial" {
  count = local.use_appconfig ? 1 : 0

  application_id           = aws_appconfig_application.flags[0].id
  configuration_profile_id = aws_appconfig_configuration_profile.flags[0].configuration_profile_id
  content_type             = "application/json"
  content                  = local.initial_flags_document
  description              = "Initial flags from Terraform (all off)"

  lifecycle {
    # The bot owns the flags' values after the first version.
    ignore_changes = [content]
  }
}

resource "aws_appconfig_deployment" "initial" {
  count = local.use_appconfig ? 1 : 0

  application_id           = aws_appconfig_application.flags[0].id
  environment_id           = aws_appconfig_environment.flags[0].environment_id
  configuration_profile_id = aws_appconfig_configuration_profile.flags[0].configuration_profile_id
  configuration_version    = aws_appconfig_hosted_configuration_version.initial[0].version_number
  deployment_strategy_id   = aws_appconfig_deployment_strategy.flags[0].id
  description              = "Initial flags from Terraform"

  lifecycle {
    ignore_changes = all
  }
}

resource "aws_iam_role" "appconfig_monitor" {
  count = local.use_appconfig && length(var.rollback_alarm_arns) > 0 ? 1 : 0

  name                 = "${var.service_name}-${var.environment_name}-appconfig-monitor"
  permissions_boundary = var.permissions_boundary_arn
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "appconfig.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy" "appconfig_monitor" {
  count = local.use_appconfig && length(var.rollback_alarm_arns) > 0 ? 1 : 0

  name = "read-rollback-alarms"
  role = aws_iam_role.appconfig_monitor[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = "cloudwatch:DescribeAlarms"
      Resource = var.rollback_alarm_arns
    }]
  })
}
