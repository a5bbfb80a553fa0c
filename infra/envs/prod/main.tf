# The production environment: this file is its whole description. Everything that
# differs between environments is a value below; variables, defaults and descriptions
# live once, in modules/environment. Replace the example values with your own (the
# infra/bootstrap outputs for the image repository) and commit them: nothing here is
# secret. Only the released image tag and the PagerDuty fallback URL come from outside
# (deploy workflow: -var image_tag=..., TF_VAR_pagerduty_fallback_endpoint from a secret).
terraform {
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }

  # Partial configuration: bucket, region and kms_key_id come from backend.hcl
  # (terraform init -backend-config=backend.hcl), written from infra/bootstrap's
  # backend_config output. Both locks are taken: the DynamoDB table for Terraform
  # < 1.11 users and the S3 lock file (use_lockfile) that replaces it; see
  # docs/infrastructure.md for dropping the table.
  backend "s3" {
    key            = "opsbot/prod.tfstate"
    encrypt        = true
    use_lockfile   = true
    dynamodb_table = "opsbot-tf-locks"
  }
}

locals {
  region = "eu-west-1"
}

provider "aws" {
  region = local.region

  default_tags {
    tags = {
      app         = "opsbot"
      environment = "prod"
      terraform   = "infra/envs/prod"
    }
  }
}

module "environment" {
  source = "../../modules/environment"

  environment = "prod"

  # Where and under which name.
  availability_zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
  domain_name        = "opsbot-prod.example.com"
  certificate_arn    = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
  vpc_cidr_block     = "10.30.0.0/16"
  single_nat_gateway = false

  # infra/bootstrap outputs.
  image_repository_url = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/opsbot"
  image_repository_arn = "arn:aws:ecr:eu-west-1:123456789012:repository/opsbot"
  image_kms_key_arn    = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  image_tag            = var.image_tag

  deletion_protection = true
  min_count           = 2 # two tasks in two AZs, per the design
  max_count           = 6

  # The bot's config file, beside this one; `opsbot check-config` runs on it before
  # every deploy. Missing, the plan stops with a message (modules/environment).
  config_yaml = fileexists("${path.module}/opsbot.yaml") ? file("${path.module}/opsbot.yaml") : ""
  # PagerDuty routing keys the config file names, read from the bot's JSON secret.
  extra_secret_keys = ["PD_KEY_PROD"]

  # Topics besides the environment's own whose HTTPS deliveries the bot accepts, and the
  # other accounts each may carry alarms of ("*": an organisation's CloudWatch publishes
  # to it): OPSBOT_SNS_TOPIC_ACCOUNTS (docs/configuration.md).
  extra_sns_topic_arns = []
  sns_topic_accounts   = {}
  # More plain settings for the bot (docs/configuration.md); never secrets.
  extra_environment = {}

  database_instance_count   = 2 # writer + reader in another AZ to fail over to
  database_min_capacity_acu = 0.5
  database_max_capacity_acu = 8

  role_manager_package_path = "${path.module}/../../../build/role-manager.zip"

  feature_flag_backend = "appconfig"
  feature_flags        = []

  # Who reaches GET /metrics on the tasks (port 9100), and whether operators may open
  # a shell in a task with ECS Exec (docs/operations.md). Closed unless listed here.
  metrics_ingress_security_group_ids = []
  metrics_ingress_cidrs              = []
  enable_execute_command             = false

  # Deliveries over HTTPS to /sns as well as the SQS queue.
  subscribe_bot_https         = false
  pagerduty_fallback_endpoint = var.pagerduty_fallback_endpoint

  # What the bot may deploy, flip and provision besides itself (docs/infrastructure.md).
  deployable_cluster_arns         = []
  deployable_service_arns         = []
  deployable_role_arns            = []
  deployable_repository_arns      = []
  flag_appconfig_application_arns = []
  flag_ssm_service_names          = []
  role_manager_function_arns      = []
}

variable "image_tag" {
  description = "Image tag (full git SHA) of the first deployment; the deploy workflow passes the released one. Later releases go through `opsbot deploy`."
  type        = string
}

variable "pagerduty_fallback_endpoint" {
  description = "PagerDuty CloudWatch-integration URL that the bot's own alarms page through; TF_VAR_pagerduty_fallback_endpoint from a secret, never a committed file."
  type        = string
  default     = null
  sensitive   = true
}

output "environment" {
  description = "Everything modules/environment exposes (terraform output -json environment | jq -r .cluster_name)."
  value       = module.environment
}
