variable "region" {
  description = "AWS region of this environment."
  type        = string
}

variable "availability_zones" {
  description = "Availability zones of this environment, by name, e.g. [\"eu-west-1a\", \"eu-west-1b\"]. Production: three."
  type        = list(string)
}

variable "domain_name" {
  description = "Public name of the bot, e.g. \"opsbot.example.com\"; Slack, SNS and PagerDuty call https://<domain_name>/..."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate for domain_name in this region."
  type        = string
}

variable "image_repository_url" {
  description = "ECR repository URL (infra/bootstrap output repository_url)."
  type        = string
}

variable "image_repository_arn" {
  description = "ECR repository ARN (infra/bootstrap output repository_arn)."
  type        = string
}

variable "image_kms_key_arn" {
  description = "ECR repository KMS key (infra/bootstrap output repository_kms_key_arn)."
  type        = string
}

variable "image_tag" {
  description = "Image tag (git SHA) of the first deployment. Later releases go through `opsbot deploy`, and Terraform ignores the running task definition."
  type        = string
}

variable "config_file" {
  description = "Path of the bot's YAML config file for this environment (relative to this directory when run from it)."
  type        = string
  default     = "opsbot.yaml"
}

variable "extra_secret_keys" {
  description = "Environment variables besides the Slack and PagerDuty ones to read from the bot's JSON secret, e.g. [\"PD_KEY_PROD\"]."
  type        = list(string)
  default     = []
}

variable "role_manager_package_path" {
  description = "Zip of the role-manager Lambda, built by infra/lambda/build-role-manager."
  type        = string
  default     = "../../../build/role-manager.zip"
}

variable "feature_flags" {
  description = "The bot's own feature flags (created off)."
  type        = list(string)
  default     = []
}

variable "subscribe_bot_https" {
  description = "Subscribe https://<domain_name>/sns to the alarms topic as well as the SQS queue."
  type        = bool
  default     = false
}

variable "pagerduty_fallback_endpoint" {
  description = "PagerDuty CloudWatch-integration URL for the fallback pager; pass as TF_VAR_pagerduty_fallback_endpoint from a secret, never in a committed file."
  type        = string
  default     = null
  sensitive   = true
}

variable "deployable_cluster_arns" {
  description = "ECS clusters of the services the bot deploys."
  type        = list(string)
  default     = []
}

variable "deployable_service_arns" {
  description = "ECS services the bot deploys (it may always deploy itself)."
  type        = list(string)
  default     = []
}

variable "deployable_role_arns" {
  description = "Task and execution roles of those services."
  type        = list(string)
  default     = []
}

variable "deployable_repository_arns" {
  description = "ECR repositories of those services."
  type        = list(string)
  default     = []
}

variable "flag_appconfig_application_arns" {
  description = "AppConfig applications of those services whose flags the bot flips."
  type        = list(string)
  default     = []
}

variable "flag_ssm_service_names" {
  description = "Services whose SSM flags (/service/<name>/feature-flag/*) the bot flips."
  type        = list(string)
  default     = []
}

variable "role_manager_function_arns" {
  description = "Role-manager Lambdas of those services' databases (/dbrole)."
  type        = list(string)
  default     = []
}
