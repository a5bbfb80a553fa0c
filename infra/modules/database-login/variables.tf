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
