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
    key            = "opsbot/staging.tfstate"
    encrypt        = true
    use_lockfile   = true
    dynamodb_table = "opsbot-tf-locks"
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      app         = "opsbot"
      environment = "staging"
      terraform   = "infra/envs/staging"
    }
  }
}

module "environment" {
  source = "../../modules/environment"

  environment = "staging"

  domain_name          = var.domain_name
  availability_zones   = var.availability_zones
  certificate_arn      = var.certificate_arn
  vpc_cidr_block       = "10.20.0.0/16"
  single_nat_gateway   = true # staging trades AZ-failure resilience for cost
  deletion_protection  = false
  image_repository_url = var.image_repository_url
  image_repository_arn = var.image_repository_arn
  image_kms_key_arn    = var.image_kms_key_arn
  image_tag            = var.image_tag
  min_count            = 1
  max_count            = 2
  config_yaml          = file(var.config_file)
  extra_secret_keys    = var.extra_secret_keys

  database_instance_count   = 1
  database_min_capacity_acu = 0.5
  database_max_capacity_acu = 2

  role_manager_package_path = var.role_manager_package_path

  # Staging exercises the SSM flag backend, production AppConfig: both stay tested.
  feature_flag_backend = "ssm"
  feature_flags        = var.feature_flags

  subscribe_bot_https         = var.subscribe_bot_https
  pagerduty_fallback_endpoint = var.pagerduty_fallback_endpoint

  deployable_cluster_arns         = var.deployable_cluster_arns
  deployable_service_arns         = var.deployable_service_arns
  deployable_role_arns            = var.deployable_role_arns
  deployable_repository_arns      = var.deployable_repository_arns
  flag_appconfig_application_arns = var.flag_appconfig_application_arns
  flag_ssm_service_names          = var.flag_ssm_service_names
  role_manager_function_arns      = var.role_manager_function_arns
}
