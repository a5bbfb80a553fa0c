output "alarm_topic_arn" {
  description = "Alarms SNS topic: use as alarm_actions and ok_actions of the services' alarms."
  value       = module.environment.alarm_topic_arn
}

output "alarm_queue_url" {
  description = "The bot's alarm queue."
  value       = module.environment.alarm_queue_url
}

output "load_balancer_dns_name" {
  description = "Point domain_name at this."
  value       = module.environment.load_balancer_dns_name
}

output "app_secret_arn" {
  description = "Secret to fill with the bot's JSON credentials."
  value       = module.environment.app_secret_arn
}

output "cluster_name" {
  description = "ECS cluster of the bot."
  value       = module.environment.cluster_name
}

output "service_name" {
  description = "ECS service of the bot."
  value       = module.environment.service_name
}

output "role_manager_function_name" {
  description = "Role-manager Lambda of the bot's database."
  value       = module.environment.role_manager_function_name
}

output "feature_flags" {
  description = "Flag backend identifiers for the bot's config file."
  value       = module.environment.feature_flags
}
