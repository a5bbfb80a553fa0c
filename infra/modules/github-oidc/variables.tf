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
  description = "GitHub environments (= infra/envs/<name>) that get a deploy role. Each role may touch its own environment's resources only, never another's in this account."
  type        = list(string)
  default     = ["staging", "prod"]

  # <prefix><environment>-* names an environment's resources: with staging and
  # staging-eu, staging's role would reach staging-eu's.
  validation {
    condition = alltrue(flatten([
      for a in var.deploy_environments : [for b in var.deploy_environments : !startswith(b, "${a}-")]
    ]))
    error_message = "No environment name may be another's followed by a dash (staging and staging-eu): the deploy roles tell environments apart by name prefix."
  }
  validation {
    condition     = !contains(var.deploy_environments, "github")
    error_message = "No environment may be named github: its names (opsbot-github-*) would cover every environment's deploy role."
  }
}

variable "state_bucket_arn" {
  description = "The Terraform state bucket (infra/bootstrap). Each deploy role reads and writes its own environment's state in it, and no other object."
  type        = string
}

variable "state_key_prefix" {
  description = "What precedes <environment>.tfstate in the state key of infra/envs/<environment> (their backend blocks: opsbot/<environment>.tfstate)."
  type        = string
  default     = "opsbot/"
}

variable "state_kms_key_arn" {
  description = "The KMS key of the state (infra/bootstrap): the deploy roles may use it, never administer it."
  type        = string
}

variable "lock_table_arn" {
  description = "The DynamoDB lock table of Terraform < 1.11 (infra/bootstrap), null once it is gone: each deploy role may take its own environment's lock only."
  type        = string
  default     = null
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

variable "metric_namespace_prefix" {
  description = "What precedes <environment> in the CloudWatch namespace of an environment's bot metrics (modules/environment: opsbot/<environment>): each deploy role is denied cloudwatch:PutMetricData into the other environments' namespaces."
  type        = string
  default     = "opsbot/"
}
