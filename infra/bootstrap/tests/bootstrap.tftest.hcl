# The state backend: private, encrypted, versioned, TLS-only; the lock table encrypted
# with point-in-time recovery.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/state", key_id = "state" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::acme-opsbot-tfstate", id = "acme-opsbot-tfstate" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/opsbot-github" }
  }
  mock_resource "aws_iam_openid_connect_provider" {
    defaults = { arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/opsbot-tf-locks" }
  }
  mock_resource "aws_ecr_repository" {
    defaults = { arn = "arn:aws:ecr:eu-west-1:123456789012:repository/opsbot" }
  }
}

variables {
  region            = "eu-west-1"
  state_bucket_name = "acme-opsbot-tfstate"
  github_repository = "acme/opsbot"
}

run "state_bucket_is_private_encrypted_and_versioned" {
  command = apply

  assert {
    condition = (aws_s3_bucket_public_access_block.state.block_public_acls && aws_s3_bucket_public_access_block.state.block_public_policy
    && aws_s3_bucket_public_access_block.state.ignore_public_acls && aws_s3_bucket_public_access_block.state.restrict_public_buckets)
    error_message = "The state bucket must block all public access."
  }

  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.state.rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms"
    error_message = "State must be encrypted with the state KMS key."
  }

  assert {
    condition     = aws_s3_bucket_versioning.state.versioning_configuration[0].status == "Enabled"
    error_message = "Every state version is kept."
  }

  assert {
    condition = one([
      for s in jsondecode(aws_s3_bucket_policy.state.policy).Statement : s.Condition.Bool["aws:SecureTransport"] if s.Effect == "Deny"
    ]) == "false"
    error_message = "The bucket refuses requests without TLS."
  }
}

run "lock_table_is_on_demand_encrypted_and_recoverable" {
  command = apply

  assert {
    condition     = aws_dynamodb_table.locks.billing_mode == "PAY_PER_REQUEST" && aws_dynamodb_table.locks.hash_key == "LockID"
    error_message = "On-demand table keyed by LockID, as the S3 backend expects."
  }

  assert {
    condition     = aws_dynamodb_table.locks.point_in_time_recovery[0].enabled && aws_dynamodb_table.locks.server_side_encryption[0].enabled
    error_message = "The lock table has point-in-time recovery and KMS encryption."
  }
}

run "other_services_roles_reach_their_environments_boundary" {
  command = apply

  variables {
    deploy_passable_role_arns = { prod = ["arn:aws:iam::123456789012:role/shop-web-task"] }
  }

  assert {
    condition = contains(flatten([
      for s in jsondecode(module.github_oidc.permissions_boundary_policies["prod"]).Statement : s.Resource if s.Action == "iam:PassRole"
    ]), "arn:aws:iam::123456789012:role/shop-web-task")
    error_message = "A service's roles listed for prod are passable under prod's permissions boundary."
  }
}

# The deploy roles may read and write exactly the state objects the environment roots'
# backend blocks name (infra/envs/<env>/main.tf), in this bucket, under this lock table.
run "each_deploy_role_holds_its_roots_state" {
  command = apply

  assert {
    condition = alltrue([
      for env in ["staging", "prod"] : one([
        for s in jsondecode(module.github_oidc.deploy_environment_policies[env]).Statement : s.Resource if s.Sid == "ReadWriteOwnState"
        ]) == [
        "arn:aws:s3:::acme-opsbot-tfstate/${regex("key\\s*=\\s*\"([^\"]+)\"", file("../envs/${env}/main.tf"))[0]}",
        "arn:aws:s3:::acme-opsbot-tfstate/${regex("key\\s*=\\s*\"([^\"]+)\"", file("../envs/${env}/main.tf"))[0]}.tflock",
      ]
    ])
    error_message = "A deploy role's state object must be its environment root's backend key."
  }

  assert {
    condition = alltrue([
      for env in ["staging", "prod"] : one([
        for s in jsondecode(module.github_oidc.deploy_environment_policies[env]).Statement : s.Resource if s.Sid == "LockOwnState"
      ]) == aws_dynamodb_table.locks.arn
    ])
    error_message = "The deploy roles take their locks in the bootstrap's lock table."
  }

  assert {
    condition = alltrue([
      for env in ["staging", "prod"] : one([
        for s in jsondecode(module.github_oidc.deploy_environment_policies[env]).Statement : s.Resource if s.Sid == "KeepTheStateKey"
      ]) == module.kms.arn
    ])
    error_message = "No deploy role may administer the state key."
  }
}
