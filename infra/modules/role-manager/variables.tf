variable "name" {
  description = "Function name, e.g. \"opsbot-staging-role-manager\"."
  type        = string
}

variable "package_path" {
  description = "Path of the deployment zip built by infra/lambda/build-role-manager."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the database."
  type        = string
}

variable "vpc_cidr_block" {
  description = "CIDR of the VPC (the Lambda may reach the VPC endpoints in it on 443)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets the function runs in."
  type        = list(string)
}

variable "db_host" {
  description = "Writer endpoint of the database."
  type        = string
}

variable "db_port" {
  description = "Port of the database."
  type        = number
  default     = 5432
}

variable "db_name" {
  description = "Database whose roles and schema are managed."
  type        = string
}

variable "db_sslmode" {
  description = "libpq sslmode for the connection. verify-full (the default) checks the database's certificate and host name against the RDS CA bundle the package carries (PGSSLROOTCERT)."
  type        = string
  default     = "verify-full"

  validation {
    condition     = contains(["require", "verify-ca", "verify-full"], var.db_sslmode)
    error_message = "db_sslmode must encrypt: require, verify-ca or verify-full."
  }
}

variable "db_security_group_id" {
  description = "Security group of the database (the function gets egress to it; add the function's group to the database's clients)."
  type        = string
}

variable "master_secret_arn" {
  description = "ARN of the RDS-managed master user secret."
  type        = string
}

variable "secrets_kms_key_arn" {
  description = "KMS key of the master secret and the password secrets."
  type        = string
}

variable "schema_name" {
  description = "Schema owned by the migrator role."
  type        = string
  default     = "app"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.schema_name))
    error_message = "schema_name must match ^[a-z_][a-z0-9_]{0,62}$."
  }
}

variable "migrator_role" {
  description = "Role that owns the schema and runs migrations (DDL)."
  type        = string
  default     = "migrator"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.migrator_role))
    error_message = "migrator_role must match ^[a-z_][a-z0-9_]{0,62}$."
  }
}

variable "app_role" {
  description = "Role the application uses for DML only."
  type        = string
  default     = "app"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.app_role))
    error_message = "app_role must match ^[a-z_][a-z0-9_]{0,62}$."
  }
}

variable "migrator_password_secret_arn" {
  description = "Optional secret (JSON key \"password\") to give the migrator role a password login instead of IAM authentication; null for IAM only."
  type        = string
  default     = null
}

variable "app_password_secret_arn" {
  description = "Optional secret (JSON key \"password\") to give the app role a password login instead of IAM authentication; null for IAM only."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Retention of the function's log group, in days."
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
