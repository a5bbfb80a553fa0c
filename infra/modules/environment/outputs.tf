output "alarm_topic_arn" {
  description = "Alarms SNS topic: alarm_actions/ok_actions of every alarm that should reach on-call."
  value       = module.monitoring.topic_arn
}

output "alarm_queue_url" {
  description = "The bot's alarm queue (OPSBOT_ALARM_QUEUE_URL)."
  value       = module.monitoring.queue_url
}

output "load_balancer_dns_name" {
  description = "Point domain_name at this (CNAME or Route 53 alias)."
  value       = module.service.load_balancer_dns_name
}

output "app_secret_arn" {
  description = "Put the bot's JSON credentials here (docs/first-deployment.md)."
  value       = module.service.app_secret_arn
}

output "cluster_name" {
  description = "ECS cluster of the bot."
  value       = module.service.cluster_name
}

output "service_name" {
  description = "ECS service of the bot."
  value       = module.service.service_name
}

output "role_manager_function_name" {
  description = "Invoke with {\"action\": \"manage\"} after the first apply."
  value       = module.role_manager.function_name
}

output "database_endpoint" {
  description = "Aurora writer endpoint."
  value       = module.database.endpoint
}

output "feature_flags" {
  description = "Flag backend and its identifiers, for the bot's config file."
  value = {
    backend               = module.feature_flags.backend
    appconfig_application = module.feature_flags.appconfig_application_id
    appconfig_environment = module.feature_flags.appconfig_environment_id
    appconfig_profile     = module.feature_flags.appconfig_profile_id
    appconfig_strategy    = module.feature_flags.appconfig_deployment_strategy_id
    ssm_service_name      = module.feature_flags.ssm_service_name
    ssm_parameter_arns    = module.feature_flags.ssm_parameter_arns
  }
}

output "self_alarm_topic_arn" {
  description = "Topic of the alarms on opsbot itself (PagerDuty only, never the bot)."
  value       = module.monitoring.self_alarm_topic_arn
}

output "self_alarm_dead_letter_queue_url" {
  description = "Alarms on opsbot itself that SNS could not deliver to PagerDuty: each message is a missed page."
  value       = module.monitoring.self_alarm_dead_letter_queue_url
}

output "emf_namespace" {
  description = "CloudWatch namespace of the bot's own metrics (OPSBOT_EMF_NAMESPACE)."
  value       = module.service.emf_namespace
}

output "dashboard_name" {
  description = "CloudWatch dashboard of opsbot itself."
  value       = module.service.dashboard_name
}

output "task_definition_arn" {
  description = "Terraform's latest task definition revision (infra/release_task_definition.py rolls it out)."
  value       = module.service.task_definition_arn
}

output "permissions_boundary_arn" {
  description = "The permissions boundary every IAM role of the environment carries (made by infra/bootstrap)."
  value       = local.permissions_boundary_arn
}
