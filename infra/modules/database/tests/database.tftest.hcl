mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/db", key_id = "db" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/opsbot-test-rds-monitoring" }
  }
  mock_resource "aws_rds_cluster" {
    defaults = {
      arn                = "arn:aws:rds:eu-west-1:123456789012:cluster:opsbot-test"
      endpoint           = "opsbot-test.cluster-abc.eu-west-1.rds.amazonaws.com"
      master_user_secret = [{ secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-abc", kms_key_id = "db", secret_status = "active" }]
    }
  }
}

variables {
  name                      = "opsbot-test"
  vpc_id                    = "vpc-0123456789abcdef0"
  private_subnet_ids        = ["subnet-a", "subnet-b"]
  client_security_group_ids = ["sg-tasks", "sg-lambda"]
  permissions_boundary_arn  = "arn:aws:iam::123456789012:policy/opsbot-test-permissions-boundary"
}

run "the_environments_permissions_boundary" {
  command = apply

  module {
    source = "../permissions-boundary"
  }

  variables {
    name = "opsbot-test"
  }
}

run "aurora_is_encrypted_with_iam_auth_and_a_managed_master_password" {
  command = apply

  assert {
    condition     = aws_rds_cluster.main.storage_encrypted && aws_rds_cluster.main.kms_key_id == module.kms.arn
    error_message = "Storage must be encrypted with the database key."
  }

  assert {
    condition     = aws_rds_cluster.main.iam_database_authentication_enabled
    error_message = "IAM database authentication must be on (the rds_iam roles log in with it)."
  }

  assert {
    condition     = aws_rds_cluster.main.manage_master_user_password && aws_rds_cluster.main.master_password == null
    error_message = "RDS must manage the master password in Secrets Manager; Terraform never sees it."
  }

  assert {
    condition     = aws_rds_cluster.main.engine == "aurora-postgresql" && aws_rds_cluster.main.serverlessv2_scaling_configuration[0].min_capacity == 0.5
    error_message = "Aurora Serverless v2 PostgreSQL is expected."
  }

  assert {
    condition     = aws_rds_cluster.main.backup_retention_period >= 7 && !aws_rds_cluster.main.skip_final_snapshot
    error_message = "Backups are kept a week or more and a final snapshot is taken."
  }

  assert {
    condition     = alltrue([for i in aws_rds_cluster_instance.main : !i.publicly_accessible && i.instance_class == "db.serverless"])
    error_message = "Instances are serverless and private."
  }

  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.clients) == 2
    error_message = "Only the listed clients reach the database port."
  }
}

run "the_monitoring_role_carries_the_boundary_and_fits_inside_it" {
  command = plan

  assert {
    condition     = aws_iam_role.monitoring.permissions_boundary == "arn:aws:iam::123456789012:policy/opsbot-test-permissions-boundary"
    error_message = "The enhanced-monitoring role must carry the environment's permissions boundary."
  }

  assert {
    condition     = contains(run.the_environments_permissions_boundary.managed_policy_arns, aws_iam_role_policy_attachment.monitoring.policy_arn)
    error_message = "The enhanced-monitoring role's managed policy must be one whose actions the boundary covers (and the deploy role may attach)."
  }
}
