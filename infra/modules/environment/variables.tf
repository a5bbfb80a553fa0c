variable "environment" {
  description = "Environment name (staging, prod, ...). Resources are named opsbot-<environment>."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.environment))
    error_message = "environment must be lower-case letters, digits and hyphens, at most 20 characters."
  }
}

variable "domain_name" {
  description = "Public name of the bot (the certificate's name), e.g. \"opsbot.example.com\"."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate for domain_name, in the environment's region."
  type        = string
}

variable "vpc_cidr_block" {
  description = "IPv4 CIDR of the environment's VPC."
  type        = string
  default     = "10.20.0.0/16"
}

variable "availability_zones" {
  description = "Availability zones of the environment, by name (2 or more)."
  type        = list(string)
}

variable "single_nat_gateway" {
  description = "One NAT gateway instead of one per AZ (cheaper, less available)."
  type        = bool
  default     = false
}

variable "allowed_ingress_cidrs" {
  description = "CIDRs that may reach the load balancer."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "metrics_ingress_security_group_ids" {
  description = "Security groups (e.g. a Prometheus scraper's) that may reach the bot's GET /metrics on its tasks (port 9100). Empty (the default): none."
  type        = list(string)
  default     = []
}

variable "metrics_ingress_cidrs" {
  description = "IPv4 CIDRs (inside the VPC or a peered network, never 0.0.0.0/0) that may reach the bot's GET /metrics on its tasks (port 9100). Empty (the default): none."
  type        = list(string)
  default     = []
}

variable "enable_execute_command" {
  description = "ECS Exec into the bot's tasks (aws ecs execute-command ... --command \"opsbot status\"): the service allows it and the task role gets the SSM session channels. Operators also need ecs:ExecuteCommand on the cluster. Off by default."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "Deletion protection of the load balancer and the database."
  type        = bool
  default     = true
}

variable "image_repository_url" {
  description = "ECR repository URL of the bot's image (from infra/bootstrap)."
  type        = string
}

variable "image_repository_arn" {
  description = "ECR repository ARN of the bot's image (from infra/bootstrap)."
  type        = string
}

variable "image_kms_key_arn" {
  description = "KMS key of the ECR repository (from infra/bootstrap)."
  type        = string
  default     = null
}

variable "image_tag" {
  description = "Image tag (git SHA) for the first deployment; later releases go through `opsbot deploy`."
  type        = string
}

variable "cpu" {
  description = "Fargate CPU units per task."
  type        = number
  default     = 512
}

variable "memory" {
  description = "Fargate memory per task, MiB."
  type        = number
  default     = 1024
}

variable "min_count" {
  description = "Minimum number of bot tasks."
  type        = number
  default     = 2
}

variable "max_count" {
  description = "Maximum number of bot tasks."
  type        = number
  default     = 4
}

variable "config_yaml" {
  description = "The bot's YAML config file content (infra/envs/<env>/opsbot.yaml)."
  type        = string
}

variable "extra_secret_keys" {
  description = "More environment variables to read from the bot's JSON secret, e.g. the PagerDuty routing-key variables the config file names (PD_KEY_PROD)."
  type        = list(string)
  default     = []
}

variable "extra_sns_topic_arns" {
  description = "Other SNS topics whose HTTPS deliveries the bot accepts."
  type        = list(string)
  default     = []
}

variable "sns_topic_accounts" {
  description = "Topic ARN => the other accounts whose alarms it may carry (12-digit IDs, \"*\" for any: a topic an organisation's CloudWatch publishes to); each topic one of extra_sns_topic_arns. Rendered to OPSBOT_SNS_TOPIC_ACCOUNTS (<topic ARN>=<account>, comma-separated). Empty (the default): each topic carries its own account's alarms only."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for accounts in values(var.sns_topic_accounts) : length(accounts) > 0 && alltrue([for a in accounts : can(regex("^([0-9]{12}|\\*)$", a))])])
    error_message = "sns_topic_accounts: each topic names one or more accounts, each 12 digits or \"*\"."
  }
  validation {
    condition     = alltrue([for topic in keys(var.sns_topic_accounts) : contains(var.extra_sns_topic_arns, topic)])
    error_message = "sns_topic_accounts names a topic that is not in extra_sns_topic_arns: the bot refuses to start with it."
  }
}

variable "alarm_queue_redrive_principal_arns" {
  description = "IAM roles that may send to the alarm queue besides the alarms topic, to redrive its dead-letter queue (aws sqs start-message-move-task sends as the caller). Empty (the default): only the topic sends, and a redrive is refused."
  type        = list(string)
  default     = []
}

variable "extra_environment" {
  description = "More plain environment variables for the bot's container (docs/configuration.md); never secrets (those are extra_secret_keys). What this module sets itself (OPSBOT_SNS_TOPIC_ACCOUNTS, the queue, the topics, the config) wins over the same name here."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.extra_environment) : can(regex("^[A-Z_][A-Z0-9_]*$", k))])
    error_message = "extra_environment: names are environment variable names (upper case, digits, underscores)."
  }
}

variable "subscribe_bot_https" {
  description = "Also subscribe https://<domain_name>/sns to the alarms topic (besides the SQS queue)."
  type        = bool
  default     = false
}

variable "pagerduty_fallback_endpoint" {
  description = "PagerDuty Amazon CloudWatch integration URL that the alarms on the bot itself page through, without the bot (null for none, then allow_unpaged_self_alarms must be set). Sensitive: pass it with TF_VAR_pagerduty_fallback_endpoint."
  type        = string
  default     = null
  sensitive   = true
}

variable "allow_unpaged_self_alarms" {
  description = "Plan without pagerduty_fallback_endpoint: the alarms on the bot itself then page nobody (a sandbox or staging choice, never production's)."
  type        = bool
  default     = false
}

variable "pagerduty_fallback_all_alarms" {
  description = "Subscribe the PagerDuty endpoint to the alarms topic too, so every alarm also pages directly (the bot's own alarms always do)."
  type        = bool
  default     = false
}

variable "database_instance_count" {
  description = "Aurora instances (2 in production)."
  type        = number
  default     = 1
}

variable "database_min_capacity_acu" {
  description = "Aurora Serverless v2 minimum ACUs."
  type        = number
  default     = 0.5
}

variable "database_max_capacity_acu" {
  description = "Aurora Serverless v2 maximum ACUs."
  type        = number
  default     = 4
}

variable "role_manager_package_path" {
  description = "Zip of the role-manager Lambda, built by infra/lambda/build-role-manager."
  type        = string
}

variable "feature_flag_backend" {
  description = "Flag backend of this environment: \"appconfig\" or \"ssm\"."
  type        = string
  default     = "appconfig"
}

variable "feature_flags" {
  description = "The bot's own feature flags to create (all off)."
  type        = list(string)
  default     = []
}

variable "deployable_cluster_arns" {
  description = "ECS clusters of other services the bot may deploy."
  type        = list(string)
  default     = []
}

variable "deployable_service_arns" {
  description = "ECS services the bot may deploy (besides itself)."
  type        = list(string)
  default     = []
}

variable "deployable_role_arns" {
  description = "Task and execution roles of those services (PassRole to ecs-tasks only). The permissions boundary must list them too (deploy_passable_role_arns of infra/bootstrap's github-oidc module), or passing them is refused."
  type        = list(string)
  default     = []
}

variable "deployable_repository_arns" {
  description = "ECR repositories of those services."
  type        = list(string)
  default     = []
}

variable "flag_appconfig_application_arns" {
  description = "AppConfig applications of other services whose flags the bot may flip."
  type        = list(string)
  default     = []
}

variable "flag_ssm_service_names" {
  description = "Other services whose SSM flags the bot may flip."
  type        = list(string)
  default     = []
}

variable "role_manager_function_arns" {
  description = "Role-manager Lambdas of other services' databases the bot may invoke."
  type        = list(string)
  default     = []
}

variable "permissions_boundary_arn" {
  description = "The permissions boundary every IAM role of the environment carries; null (the default) for the one infra/bootstrap makes for it, opsbot-<environment>-permissions-boundary in this account. The GitHub deploy role may create and change only roles that carry it."
  type        = string
  default     = null
}
