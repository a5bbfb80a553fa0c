variable "name" {
  description = "Name prefix of the roles, e.g. \"opsbot\"."
  type        = string
}

variable "github_repository" {
  description = "GitHub repository allowed to assume the roles, as owner/name."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name, without wildcards."
  }
}

variable "create_oidc_provider" {
  description = "Create the account's GitHub OIDC provider (false if it already exists)."
  type        = bool
  default     = true
}

variable "publish_branch" {
  description = "Branch whose workflow runs may push images."
  type        = string
  default     = "main"
}

variable "repository_arns" {
  description = "ECR repositories the publish role may push to."
  type        = list(string)
}

variable "repository_kms_key_arns" {
  description = "KMS keys of those repositories."
  type        = list(string)
}

variable "deploy_environments" {
  description = "GitHub environments (= infra/envs/<name>) that get a deploy role."
  type        = list(string)
  default     = ["staging", "prod"]
}

variable "deploy_iam_name_prefix" {
  description = "Each environment's deploy role may manage the IAM roles whose names start with this and its environment's name and a dash (every role that environment's root creates does: opsbot-<environment>-...)."
  type        = string
  default     = "opsbot-"
}

variable "deploy_passable_role_arns" {
  description = "Environment => roles outside it that its roles may pass to ECS tasks: the bot's deployable_role_arns there (other services' task and execution roles). The permissions boundary allows passing only the environment's own roles and these; the bot's /deploy of such a service fails on iam:PassRole until its roles are listed here."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for env in keys(var.deploy_passable_role_arns) : contains(var.deploy_environments, env)])
    error_message = "deploy_passable_role_arns names an environment that is not in deploy_environments."
  }
}
