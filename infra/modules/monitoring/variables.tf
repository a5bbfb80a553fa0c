variable "name" {
  description = "Name prefix, e.g. \"opsbot-staging\". Also the prefix of the intake's own alarm names."
  type        = string
}

variable "queue_retention_seconds" {
  description = "How long the alarms queue keeps an unconsumed message, in seconds."
  type        = number
  default     = 345600 # 4 days
}

variable "queue_visibility_timeout_seconds" {
  description = "How long a received alarm stays invisible to other consumers while the bot processes it."
  type        = number
  default     = 60
}

variable "queue_max_receive_count" {
  description = "Receives before a message moves to the dead-letter queue."
  type        = number
  default     = 5
}

variable "queue_raw_message_delivery" {
  description = "Deliver the bare alarm JSON to SQS instead of the SNS envelope. Keep false unless the bot is configured for raw messages."
  type        = bool
  default     = false
}

variable "queue_redrive_principal_arns" {
  description = "IAM roles (ARNs, wildcards allowed) that may send to the alarms queue besides the alarms topic: whoever redrives its dead-letter queue (aws sqs start-message-move-task sends as the caller). Whatever they send is taken for an alarm; empty: only the topic sends, and a redrive is refused."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.queue_redrive_principal_arns : can(regex("^arn:[a-z-]+:(iam|sts)::[0-9]{12}:", arn))])
    error_message = "queue_redrive_principal_arns must be IAM principal ARNs of one account each."
  }
}

variable "queue_age_threshold_seconds" {
  description = "Age of the oldest queued alarm, in seconds, above which the bot is considered not consuming."
  type        = number
  default     = 300
}

variable "bot_https_endpoint" {
  description = "Optional HTTPS URL of the bot's /sns route (e.g. https://opsbot.example.com/sns) to subscribe to the topic; null for none."
  type        = string
  default     = null

  validation {
    condition     = var.bot_https_endpoint == null || startswith(coalesce(var.bot_https_endpoint, "x"), "https://")
    error_message = "bot_https_endpoint must be an https:// URL."
  }
}

variable "pagerduty_fallback_endpoint" {
  description = "PagerDuty Amazon CloudWatch integration URL (https://events.pagerduty.com/integration/<key>/enqueue) that the bot's own alarms page through; null or \"\" for none. It holds an integration key: pass it from a secret store, not a committed file."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.pagerduty_fallback_endpoint == null ? true : (var.pagerduty_fallback_endpoint == "" || startswith(var.pagerduty_fallback_endpoint, "https://"))
    error_message = "pagerduty_fallback_endpoint must be an https:// URL."
  }
}

variable "pagerduty_endpoint_required" {
  description = "Refuse to plan without pagerduty_fallback_endpoint: without it the bot's own alarms page nobody."
  type        = bool
  default     = true
}

variable "pagerduty_all_alarms" {
  description = "Also subscribe the PagerDuty endpoint to the alarms topic, so every alarm pages directly as well as through the bot (double pages while the bot is healthy)."
  type        = bool
  default     = false
}
