variable "name" {
  description = "The environment's name prefix, e.g. \"opsbot-staging\": the boundary is \"<name>-permissions-boundary\", and caps the roles named \"<name>-*\"."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,100}$", var.name))
    error_message = "name must be a plain IAM name prefix (no wildcards, no path)."
  }
}

variable "passable_role_arns" {
  description = "Roles outside the environment that its roles may pass to ECS tasks: the bot's deployable_role_arns (other services' task and execution roles). The environment's own roles (<name>-*) are always passable."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.passable_role_arns : can(regex("^arn:[a-z-]+:iam::[0-9]{12}:role/[^*?]+$", arn))])
    error_message = "passable_role_arns must be IAM role ARNs without wildcards."
  }
}

variable "other_environment_names" {
  description = "The name prefixes of the other environments in this account (\"opsbot-prod\" for \"opsbot-staging\"): the roles may never touch their named resources, whatever their own policies say."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for n in var.other_environment_names : can(regex("^[A-Za-z0-9+=,.@_-]{1,100}$", n)) && n != var.name])
    error_message = "other_environment_names must be plain name prefixes, other than name."
  }
}
