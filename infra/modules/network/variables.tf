variable "name" {
  description = "Name prefix for every resource of this network, e.g. \"opsbot-staging\"."
  type        = string
}

variable "cidr_block" {
  description = "IPv4 CIDR of the VPC. Split into 16 equal blocks: the first N (one per zone) are public subnets, blocks 8.. are private subnets."
  type        = string
  default     = "10.20.0.0/16"

  validation {
    condition     = can(cidrhost(var.cidr_block, 0))
    error_message = "cidr_block must be an IPv4 CIDR such as 10.20.0.0/16."
  }
}

variable "availability_zones" {
  description = "Availability zones to spread the subnets over, by name (e.g. [\"eu-west-1a\", \"eu-west-1b\"]): two or more, the ALB and Aurora need two."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 8
    error_message = "Name between 2 and 8 availability zones."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all AZs (cheaper, loses outbound internet if that AZ fails) instead of one per AZ."
  type        = bool
  default     = false
}

variable "interface_endpoints" {
  description = "AWS services reached through interface VPC endpoints (the suffix after com.amazonaws.<region>.). S3 always gets a gateway endpoint."
  type        = list(string)
  default = [
    "appconfig",
    "appconfigdata",
    "ecr.api",
    "ecr.dkr",
    "ecs",
    "kms",
    "lambda",
    "logs",
    "monitoring",
    "secretsmanager",
    "sqs",
    "ssm",
    "sts",
  ]
}

variable "log_retention_days" {
  description = "Retention of the VPC flow logs, in days."
  type        = number
  default     = 365
}

variable "permissions_boundary_arn" {
  description = "The permissions boundary every IAM role of this module carries: the environment's <name>-permissions-boundary (modules/permissions-boundary, made by infra/bootstrap). The GitHub deploy role may create and change only roles that carry it."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:iam::[0-9]{12}:policy/[A-Za-z0-9+=,.@_/-]+$", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be the ARN of an IAM managed policy."
  }
}
