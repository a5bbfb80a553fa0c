variable "description" {
  description = "What the key encrypts, e.g. \"opsbot-prod alarm topic and queues\"."
  type        = string
}

variable "alias" {
  description = "Alias name without the \"alias/\" prefix, e.g. \"opsbot-prod-alarms\"."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9/_-]+$", var.alias)) && !startswith(var.alias, "aws/") && !startswith(var.alias, "alias/")
    error_message = "alias is the name after \"alias/\": letters, digits, '/', '_' and '-', not under aws/."
  }
}

variable "log_group_name_pattern" {
  description = "CloudWatch Logs log groups (name or ArnLike pattern, e.g. \"/aws/lambda/opsbot-prod-role-manager\") that may encrypt with the key; null when no log group uses it."
  type        = string
  default     = null
}

variable "service_principals" {
  description = "AWS services of this account that encrypt and decrypt with the key for their own resources (e.g. cloudwatch.amazonaws.com publishing to an encrypted topic)."
  type        = list(string)
  default     = []
}

variable "service_actions" {
  description = "What service_principals may do with the key."
  type        = list(string)
  default     = ["kms:GenerateDataKey*", "kms:Decrypt"]
}

variable "deletion_window_in_days" {
  description = "Days a scheduled key deletion can still be cancelled (7-30). A deleted key makes everything it encrypted unreadable."
  type        = number
  default     = 30
}
