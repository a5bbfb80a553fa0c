# Account bootstrap, applied once by an administrator with local state:
# the Terraform backend (state bucket + lock table), the build repository shared by all
# environments, and the GitHub OIDC roles that CI uses from then on.
terraform {
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      app       = "opsbot"
      layer     = "bootstrap"
      terraform = "infra/bootstrap"
    }
  }
}

module "build_repository" {
  source = "../modules/build-repository"

  name = var.name
}

module "github_oidc" {
  source = "../modules/github-oidc"

  name                      = var.name
  github_repository         = var.github_repository
  create_oidc_provider      = var.create_github_oidc_provider
  repository_arns           = [module.build_repository.repository_arn]
  repository_kms_key_arns   = [module.build_repository.kms_key_arn]
  deploy_environments       = var.environments
  deploy_iam_name_prefix    = "${var.name}-"
  deploy_passable_role_arns = var.deploy_passable_role_arns

  # Each deploy role reads and writes its own environment's state only.
  state_bucket_arn  = aws_s3_bucket.state.arn
  state_kms_key_arn = module.kms.arn
  lock_table_arn    = aws_dynamodb_table.locks.arn
}
