variable "region" {
  description = "AWS region of the backend, the build repository and (by default) the environments."
  type        = string
}

variable "name" {
  description = "Name prefix for account-level resources; also the ECR repository name and the IAM name prefix the deploy roles may manage."
  type        = string
  default     = "opsbot"
}

variable "state_bucket_name" {
  description = "Globally unique name of the Terraform state bucket, e.g. \"acme-opsbot-tfstate\"."
  type        = string
}

variable "lock_table_name" {
  description = "Name of the DynamoDB lock table."
  type        = string
  default     = "opsbot-tf-locks"
}

variable "state_version_retention_days" {
  description = "Days old state versions are kept."
  type        = number
  default     = 365
}

variable "github_repository" {
  description = "GitHub repository (owner/name) whose workflows may publish images and deploy."
  type        = string
}

variable "create_github_oidc_provider" {
  description = "Create the account's GitHub OIDC provider (false if the account already has one)."
  type        = bool
  default     = true
}

variable "environments" {
  description = "Environments (infra/envs/<name>, GitHub environments of the same name) that get a deploy role."
  type        = list(string)
  default     = ["staging", "prod"]
}

variable "deploy_passable_role_arns" {
  description = "Environment => task and execution roles of other services that opsbot deploys there (the environment's deployable_role_arns). Each environment's permissions boundary allows passing its own roles and these only: a /deploy of a service whose roles are missing here fails on iam:PassRole."
  type        = map(list(string))
  default     = {}
}
