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

provider "aws" {
  region = var.region

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

  domain_name          = var.domain_name
  availability_zones   = var.availability_zones
  certificate_arn      = var.certificate_arn
  vpc_cidr_block       = "10.30.0.0/16"
  single_nat_gateway   = false
  deletion_protection  = true
  image_repository_url = var.image_repository_url
  image_repository_arn = var.image_repository_arn
  image_kms_key_arn    = var.image_kms_key_arn
  image_tag            = var.image_tag
  min_count            = 2 # two tasks in two AZs, per the design
  max_count            = 6
  config_yaml          = file(var.config_file)
  extra_secret_keys    = var.extra_secret_keys

  database_instance_count   = 2 # writer + reader in another AZ to fail over to
  database_min_capacity_acu = 0.5
  database_max_capacity_acu = 8

  role_manager_package_path = var.role_manager_package_path

  feature_flag_backend = "appconfig"
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
