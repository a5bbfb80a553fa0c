output "cluster_arn" {
  description = "ARN of the Aurora cluster."
  value       = aws_rds_cluster.main.arn
}

output "cluster_resource_id" {
  description = "Resource ID of the cluster, used in rds-db:connect ARNs for IAM authentication."
  value       = aws_rds_cluster.main.cluster_resource_id
}

output "endpoint" {
  description = "Writer endpoint."
  value       = aws_rds_cluster.main.endpoint
}

output "port" {
  description = "PostgreSQL port."
  value       = var.port
}

output "database_name" {
  description = "Name of the database."
  value       = var.database_name
}

output "security_group_id" {
  description = "Security group of the cluster."
  value       = aws_security_group.database.id
}

output "master_secret_arn" {
  description = "ARN of the RDS-managed master user secret (for the role-manager Lambda only)."
  value       = aws_rds_cluster.main.master_user_secret[0].secret_arn
}

output "kms_key_arn" {
  description = "KMS key of the storage, the master secret and the login secret."
  value       = aws_kms_key.database.arn
}

output "login_secret_arn" {
  description = "Secrets Manager secret of the bot's own login; its \"url\" key is the bot's DATABASE_URL."
  value       = aws_secretsmanager_secret.login.arn
}

output "login_role" {
  description = "Database role the bot logs in as."
  value       = var.login_role
}
