output "cluster_arn" {
  description = "ARN of the ECS cluster."
  value       = aws_ecs_cluster.main.arn
}

output "cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.main.name
}

output "service_arn" {
  description = "ARN of the ECS service (ecs:service ARNs are arn:...:service/<cluster>/<service>)."
  value       = aws_ecs_service.service.id
}

output "service_name" {
  description = "Name of the ECS service."
  value       = aws_ecs_service.service.name
}

output "task_role_arn" {
  description = "ARN of the bot's task role."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "ARN of the bot's task execution role."
  value       = aws_iam_role.execution.arn
}

output "tasks_security_group_id" {
  description = "Security group of the bot's tasks (give it access to the database)."
  value       = aws_security_group.tasks.id
}

output "load_balancer_dns_name" {
  description = "DNS name of the load balancer: point the certificate's name at it (CNAME or alias)."
  value       = aws_lb.main.dns_name
}

output "load_balancer_zone_id" {
  description = "Hosted zone of the load balancer, for a Route 53 alias record."
  value       = aws_lb.main.zone_id
}

output "app_secret_arn" {
  description = "Secrets Manager secret to fill with the bot's JSON credentials."
  value       = aws_secretsmanager_secret.app.arn
}

output "access_logs_bucket" {
  description = "S3 bucket of the ALB access logs."
  value       = aws_s3_bucket.access_logs.id
}

output "log_group_name" {
  description = "CloudWatch log group of the bot's containers."
  value       = aws_cloudwatch_log_group.service.name
}

output "emf_namespace" {
  description = "CloudWatch namespace of the bot's own metrics (OPSBOT_EMF_NAMESPACE)."
  value       = var.emf_namespace
}

output "dashboard_name" {
  description = "CloudWatch dashboard of opsbot itself."
  value       = aws_cloudwatch_dashboard.service.dashboard_name
}

output "task_definition_arn" {
  description = "The task definition revision Terraform registered last: its settings, config version and all, with the image of the first deployment."
  value       = aws_ecs_task_definition.service.arn
}
