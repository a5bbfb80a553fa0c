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
  description = "KMS key of the storage and the master secret (also used for the bot's login secret)."
  value       = module.kms.arn
}


