variable "name" {
  description = "Name prefix of the secret, e.g. \"opsbot-staging\" (the secret is <name>/database-login)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key encrypting the secret (the database module's key)."
  type        = string
}

variable "login_role" {
  description = "Database role the bot logs in as; the role manager creates it with this secret's password."
  type        = string

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.login_role))
    error_message = "login_role must match ^[a-z_][a-z0-9_]{0,62}$."
  }
}

variable "host" {
  description = "Writer endpoint of the database."
  type        = string
}

variable "port" {
  description = "Port of the database."
  type        = number
  default     = 5432
}

variable "database_name" {
  description = "Database the bot uses."
  type        = string
}

variable "login_password_version" {
  description = "Bump to generate and store a new password (write-only secret version)."
  type        = number
  default     = 1
}

variable "ca_bundle_path" {
  description = "Path, inside the opsbot image, of the RDS CA bundle that verifies the database's certificate (the Dockerfile adds it)."
  type        = string
  default     = "/etc/ssl/certs/rds-global-bundle.pem"

  validation {
    condition     = can(regex("^/[A-Za-z0-9._/-]+$", var.ca_bundle_path))
    error_message = "ca_bundle_path must be an absolute path of letters, digits, '.', '_', '-' and '/' (it sits in a URL)."
  }
}
