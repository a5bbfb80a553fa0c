variable "name" {
  description = "Name of the Aurora cluster and prefix of its resources, e.g. \"opsbot-staging\"."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the database."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (two or more AZs) for the DB subnet group."
  type        = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups allowed to connect on the database port (the bot's tasks, the role-manager Lambda)."
  type        = list(string)
  default     = []
}

variable "engine_version" {
  description = "Aurora PostgreSQL engine version (major.minor). The major picks the parameter group family."
  type        = string
  default     = "16.6"
}

variable "database_name" {
  description = "Name of the database created in the cluster."
  type        = string
  default     = "opsbot"
}

variable "port" {
  description = "PostgreSQL port."
  type        = number
  default     = 5432
}

variable "master_username" {
  description = "Master user name. Its password is generated and kept by RDS in Secrets Manager; only the role-manager Lambda reads it."
  type        = string
  default     = "postgres_admin"
}



variable "instance_count" {
  description = "Aurora instances (2 in production: a writer and a reader in another AZ to fail over to)."
  type        = number
  default     = 1
}

variable "min_capacity_acu" {
  description = "Serverless v2 minimum capacity in ACUs (0.5 steps)."
  type        = number
  default     = 0.5
}

variable "max_capacity_acu" {
  description = "Serverless v2 maximum capacity in ACUs."
  type        = number
  default     = 4
}

variable "backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 14
}

variable "deletion_protection" {
  description = "Refuse to delete the cluster (true in production)."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the PostgreSQL log group, in days."
  type        = number
  default     = 365
}

variable "permissions_boundary_arn" {
  description = "The permissions boundary every IAM role of this module carries: the environment's <name>-permissions-boundary (modules/permissions-boundary, made by infra/bootstrap). The GitHub deploy role may create and change only roles that carry it."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:iam::[0-9]{12}:policy/[A-Za-z0-9+=,.@_/-]+$", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be the ARN of an IAM managed policy."
  }
}
