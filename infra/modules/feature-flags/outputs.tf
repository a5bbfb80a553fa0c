output "backend" {
  description = "The flag backend of this environment."
  value       = var.backend
}

output "appconfig_application_arn" {
  description = "AppConfig application ARN (null for the ssm backend): the bot's task role may manage flags under it."
  value       = local.use_appconfig ? aws_appconfig_application.flags[0].arn : null
}

output "appconfig_application_id" {
  description = "AppConfig application ID, for the bot's config file."
  value       = local.use_appconfig ? aws_appconfig_application.flags[0].id : null
}

output "appconfig_environment_id" {
  description = "AppConfig environment ID, for the bot's config file."
  value       = local.use_appconfig ? aws_appconfig_environment.flags[0].environment_id : null
}

output "appconfig_profile_id" {
  description = "AppConfig feature-flag profile ID, for the bot's config file."
  value       = local.use_appconfig ? aws_appconfig_configuration_profile.flags[0].configuration_profile_id : null
}

output "appconfig_deployment_strategy_id" {
  description = "AppConfig deployment strategy ID, for the bot's config file."
  value       = local.use_appconfig ? aws_appconfig_deployment_strategy.flags[0].id : null
}

output "ssm_parameter_arns" {
  description = "SSM backend: flag name => parameter ARN (pass to the service as feature_flag_parameter_arns)."
  value       = { for f, p in aws_ssm_parameter.flags : f => p.arn }
}

output "ssm_service_name" {
  description = "SSM backend: the service name in the parameter paths (null for appconfig)."
  value       = local.use_ssm ? var.service_name : null
}
