variable "backend" {
  description = "Where this environment's flags live: \"appconfig\" (AppConfig feature flags) or \"ssm\" (SSM parameters injected as FF_<FLAG>)."
  type        = string

  validation {
    condition     = contains(["appconfig", "ssm"], var.backend)
    error_message = "backend must be \"appconfig\" or \"ssm\"."
  }
}

variable "service_name" {
  description = "Service the flags belong to: the AppConfig application name, or <service_name> in /service/<service_name>/feature-flag/<FLAG>."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+$", var.service_name))
    error_message = "service_name may hold letters, digits, '_', '.' and '-' only."
  }
}

variable "environment_name" {
  description = "Environment name (the AppConfig environment), e.g. \"staging\"."
  type        = string
}

variable "flags" {
  description = "Flag names to create, all off at first (SSM flags become FF_<name> variables: use upper-case letters, digits and underscores)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for f in var.flags : can(regex("^[A-Za-z][A-Za-z0-9_]{0,63}$", f))])
    error_message = "Flag names must start with a letter and hold letters, digits and underscores only."
  }
}

variable "kms_key_arn" {
  description = "Optional KMS key for the AppConfig hosted configuration versions; null uses the AWS-owned key."
  type        = string
  default     = null
}

variable "deployment_duration_minutes" {
  description = "AppConfig: minutes over which a flag change reaches all targets."
  type        = number
  default     = 10
}

variable "deployment_steps" {
  description = "AppConfig: number of linear steps of a flag rollout."
  type        = number
  default     = 4
}

variable "final_bake_minutes" {
  description = "AppConfig: minutes the rollout is watched after reaching 100% before it completes."
  type        = number
  default     = 5
}

variable "rollback_alarm_arns" {
  description = "AppConfig: CloudWatch alarms that roll a flag deployment back when they fire during it."
  type        = list(string)
  default     = []
}

variable "permissions_boundary_arn" {
  description = "The permissions boundary every IAM role of this module carries: the environment's <name>-permissions-boundary (modules/permissions-boundary, made by infra/bootstrap). The GitHub deploy role may create and change only roles that carry it."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:iam::[0-9]{12}:policy/[A-Za-z0-9+=,.@_/-]+$", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be the ARN of an IAM managed policy."
  }
}
