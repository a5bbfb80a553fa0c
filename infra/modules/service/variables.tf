variable "name" {
  description = "Name of the service and prefix of its resources and alarms, e.g. \"opsbot-staging\" (at most 32 characters: ALB and target group names)."
  type        = string

  validation {
    condition     = length(var.name) <= 32 && can(regex("^[a-z][a-z0-9-]*$", var.name))
    error_message = "name must be lower-case letters, digits and hyphens, at most 32 characters."
  }
}

# --- network ---------------------------------------------------------------------

variable "vpc_id" {
  description = "VPC of the service."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets for the load balancer (two or more AZs)."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Private subnets for the tasks."
  type        = list(string)
}

variable "allowed_ingress_cidrs" {
  description = "IPv4 CIDRs allowed to reach the load balancer. Slack, SNS and PagerDuty send from changing address pools, so this is usually 0.0.0.0/0; requests are authenticated by signature."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "certificate_arn" {
  description = "ARN of the ACM certificate for the HTTPS listener (a name that resolves to the load balancer)."
  type        = string
}

variable "deletion_protection" {
  description = "Protect the load balancer from deletion (true in production)."
  type        = bool
  default     = true
}

variable "waf_rate_limit_per_5min" {
  description = "Requests per source address per 5 minutes above which the WAF blocks that address."
  type        = number
  default     = 20000
}

# --- container -------------------------------------------------------------------

variable "image_repository_url" {
  description = "ECR repository URL of the bot's image."
  type        = string
}

variable "image_repository_arn" {
  description = "ECR repository ARN of the bot's image (the execution role may pull from it only)."
  type        = string
}

variable "image_kms_key_arn" {
  description = "KMS key encrypting the image repository, or null when it uses AES256."
  type        = string
  default     = null
}

variable "image_tag" {
  description = "Image tag (a git SHA) of the first deployment. Later releases are rolled by `opsbot deploy`; Terraform ignores the task definition after creation."
  type        = string
}

variable "container_port" {
  description = "Port the bot listens on (PORT)."
  type        = number
  default     = 3000
}

variable "cpu" {
  description = "Fargate task CPU units (256 = 0.25 vCPU)."
  type        = number
  default     = 512
}

variable "memory" {
  description = "Fargate task memory in MiB."
  type        = number
  default     = 1024
}

variable "desired_count" {
  description = "Tasks at creation; autoscaling moves it between min_count and max_count afterwards."
  type        = number
  default     = 2
}

variable "min_count" {
  description = "Minimum number of tasks (2+ in production: one task per AZ survives an AZ loss)."
  type        = number
  default     = 2
}

variable "max_count" {
  description = "Maximum number of tasks."
  type        = number
  default     = 4
}

variable "cpu_target_percent" {
  description = "Average CPU utilisation that autoscaling aims for."
  type        = number
  default     = 60
}

variable "environment" {
  description = "Extra plain environment variables for the container (no secrets here)."
  type        = map(string)
  default     = {}
}

variable "config_yaml" {
  description = "Content of the bot's YAML config file (OPSBOT_CONFIG). Stored as an encrypted SSM parameter."
  type        = string
}

variable "app_secret_keys" {
  description = "Environment variables read from the JSON keys of the service's Secrets Manager secret. Every key must exist in the secret's value or the task does not start."
  type        = list(string)
  default     = ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "PAGERDUTY_API_TOKEN", "PAGERDUTY_WEBHOOK_SECRETS"]
}

variable "feature_flag_parameter_arns" {
  description = "SSM-backed feature flags of this service: flag name => parameter ARN, injected as FF_<flag> at task start."
  type        = map(string)
  default     = {}
}

variable "log_retention_days" {
  description = "Retention of the service's and the WAF's log groups, in days."
  type        = number
  default     = 365
}

variable "access_log_retention_days" {
  description = "Days the ALB access logs are kept."
  type        = number
  default     = 90
}

# --- what the bot talks to -------------------------------------------------------

variable "database_ca_bundle_path" {
  description = "Path, inside the opsbot image, of the RDS CA bundle libpq verifies the database's certificate with (the Dockerfile adds it)."
  type        = string
  default     = "/etc/ssl/certs/rds-global-bundle.pem"
}

variable "database_url_secret_arn" {
  description = "Secrets Manager secret whose JSON key \"url\" is the bot's DATABASE_URL (its own database login, never the master user's)."
  type        = string
}

variable "database_secret_kms_key_arn" {
  description = "KMS key of the database URL secret."
  type        = string
}

variable "database_security_group_id" {
  description = "Security group of the database; the tasks get egress to it."
  type        = string
}

variable "database_port" {
  description = "Port of the database."
  type        = number
  default     = 5432
}

variable "self_alarm_topic_arn" {
  description = "Topic of the alarms on the bot itself, subscribed to PagerDuty directly (monitoring module's self_alarm_topic_arn); never the topic the bot consumes."
  type        = string
}

variable "emf_namespace" {
  description = "CloudWatch namespace of the bot's Embedded Metric Format lines (OPSBOT_EMF_NAMESPACE), e.g. \"opsbot/prod\"."
  type        = string
}

variable "emf_interval_s" {
  description = "Seconds between the bot's EMF lines (OPSBOT_EMF_INTERVAL_S). The alarms on them evaluate 60-second periods: keep it at 60 or below."
  type        = number
  default     = 60

  validation {
    condition     = var.emf_interval_s >= 10 && var.emf_interval_s <= 60
    error_message = "emf_interval_s must be between 10 and 60: every alarm period needs a datapoint from every task."
  }
}

variable "sns_topic_arns" {
  description = "Topics the bot accepts messages from (OPSBOT_SNS_TOPIC_ARNS)."
  type        = list(string)
}

variable "sns_topic_accounts" {
  description = "Topic ARN (or, under raw delivery, alarm_queue_url) => the other accounts whose alarms it may carry, 12-digit IDs or \"*\" (OPSBOT_SNS_TOPIC_ACCOUNTS, <topic ARN>=<account> pairs). Empty: each topic carries its own account's alarms only."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for accounts in values(var.sns_topic_accounts) : length(accounts) > 0 && alltrue([for a in accounts : can(regex("^([0-9]{12}|\\*)$", a))])])
    error_message = "sns_topic_accounts: each topic names one or more accounts, each 12 digits or \"*\"."
  }
  validation {
    condition     = alltrue([for k in keys(var.sns_topic_accounts) : contains(var.sns_topic_arns, k) || k == var.alarm_queue_url])
    error_message = "sns_topic_accounts names a topic that is not in sns_topic_arns (nor the alarm queue's URL): the bot refuses to start with it."
  }
}

variable "alarm_queue_url" {
  description = "URL of the alarms queue (OPSBOT_ALARM_QUEUE_URL)."
  type        = string
}

variable "alarm_queue_raw_delivery" {
  description = "Whether the alarms queue's subscription uses raw message delivery (OPSBOT_ALARM_QUEUE_RAW_DELIVERY): the bot then has no signature to verify."
  type        = bool
  default     = false
}

variable "alarm_queue_arn" {
  description = "ARN of the alarms queue the bot consumes."
  type        = string
}

variable "alarm_queue_kms_key_arn" {
  description = "KMS key encrypting the alarms queue."
  type        = string
}

# --- what the bot may change (the task role) -------------------------------------

variable "deployable_cluster_arns" {
  description = "ECS clusters holding services the bot may deploy (ListTasks and DescribeTasks are scoped to them)."
  type        = list(string)
  default     = []
}

variable "deployable_service_arns" {
  description = "ECS services the bot may deploy and roll back (DescribeServices, UpdateService)."
  type        = list(string)
  default     = []
}

variable "deployable_role_arns" {
  description = "Task and execution roles of the deployable services: the bot may pass these, and only to ecs-tasks.amazonaws.com, when it registers a task definition."
  type        = list(string)
  default     = []
}

variable "deployable_repository_arns" {
  description = "ECR repositories whose images the bot may look up and deploy."
  type        = list(string)
  default     = []
}

variable "flag_appconfig_application_arns" {
  description = "AppConfig applications whose feature flags the bot may flip."
  type        = list(string)
  default     = []
}

variable "flag_ssm_service_names" {
  description = "Service names whose SSM flags (/service/<name>/feature-flag/*) the bot may read and write."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for n in var.flag_ssm_service_names : can(regex("^[A-Za-z0-9_.-]+$", n))])
    error_message = "flag_ssm_service_names entries may hold letters, digits, '_', '.' and '-' only (no wildcards)."
  }
}

variable "role_manager_function_arns" {
  description = "Role-manager Lambda functions the bot may invoke (/dbrole)."
  type        = list(string)
  default     = []
}

# --- alarm thresholds ------------------------------------------------------------

variable "alarm_5xx_threshold" {
  description = "5xx responses per minute above which the 5xx alarms fire (3 of 5 minutes)."
  type        = number
  default     = 5
}

variable "alarm_p99_latency_seconds" {
  description = "p99 target response time, in seconds, above which the latency alarm fires."
  type        = number
  default     = 2
}

variable "alarm_cpu_percent" {
  description = "Average CPU utilisation above which the CPU alarm fires."
  type        = number
  default     = 85
}

variable "alarm_memory_percent" {
  description = "Maximum memory utilisation above which the memory alarm fires."
  type        = number
  default     = 85
}

variable "self_deployable" {
  description = "Let the bot deploy and roll back its own service and image too (adds them to the deployable lists)."
  type        = bool
  default     = true
}

variable "alarm_page_waiting_seconds" {
  description = "Age, in seconds, of the oldest page waiting in the outbox above which the bot is paging too late."
  type        = number
  default     = 120
}

variable "alarm_jobs_late_seconds" {
  description = "Seconds a scheduled job may stay due in the store before the bot is said to run no scheduled jobs (a leader's failover takes seconds)."
  type        = number
  default     = 300
}

variable "alarm_heartbeat_missing_minutes" {
  description = "Minutes without any heartbeat from any task before the dead-man's switch pages."
  type        = number
  default     = 5
}

variable "permissions_boundary_arn" {
  description = "The permissions boundary every IAM role of this module carries: the environment's <name>-permissions-boundary (modules/permissions-boundary, made by infra/bootstrap). The GitHub deploy role may create and change only roles that carry it."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:iam::[0-9]{12}:policy/[A-Za-z0-9+=,.@_/-]+$", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be the ARN of an IAM managed policy."
  }
}

variable "metrics_port" {
  description = "Port of the bot's GET /metrics (OPSBOT_METRICS_PORT; the image's default is 9100). Opened, and set in the task, only when metrics_ingress_security_group_ids or metrics_ingress_cidrs names a scraper."
  type        = number
  default     = 9100

  validation {
    condition     = var.metrics_port >= 1 && var.metrics_port <= 65535 && var.metrics_port != var.container_port
    error_message = "metrics_port must be a TCP port other than container_port."
  }
}

variable "metrics_ingress_security_group_ids" {
  description = "Security groups (e.g. a Prometheus scraper's) that may reach the tasks' metrics_port. Empty (the default): none."
  type        = list(string)
  default     = []
}

variable "metrics_ingress_cidrs" {
  description = "IPv4 CIDRs (inside the VPC or a peered network) that may reach the tasks' metrics_port. Empty (the default): none."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.metrics_ingress_cidrs : can(cidrnetmask(c)) && c != "0.0.0.0/0"])
    error_message = "metrics_ingress_cidrs must be IPv4 CIDRs, and not 0.0.0.0/0: name the scrapers."
  }
}

variable "enable_execute_command" {
  description = "Turn on ECS Exec (aws ecs execute-command) for the bot's tasks, e.g. to run `opsbot status` in one: the service allows it and the task role gets the ssmmessages channels the SSM agent needs. Who may open a shell is the operators' ecs:ExecuteCommand permission on the cluster. Off by default."
  type        = bool
  default     = false
}
