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
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/lambda" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/opsbot-test-role-manager" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/opsbot-test-role-manager" }
  }
}

variables {
  name                 = "opsbot-test-role-manager"
  package_path         = "tests/fixtures/package-placeholder.txt"
  vpc_id               = "vpc-0123456789abcdef0"
  vpc_cidr_block       = "10.20.0.0/16"
  subnet_ids           = ["subnet-a", "subnet-b"]
  db_host              = "opsbot-test.cluster-abc.eu-west-1.rds.amazonaws.com"
  db_name              = "opsbot"
  db_security_group_id = "sg-database"
  master_secret_arn    = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-abc"
  secrets_kms_key_arn  = "arn:aws:kms:eu-west-1:123456789012:key/db"

  permissions_boundary_arn = "arn:aws:iam::123456789012:policy/opsbot-test-permissions-boundary"
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

run "function_runs_in_the_vpc_with_names_not_secrets" {
  command = apply

  assert {
    condition     = aws_lambda_function.role_manager.runtime == "python3.11" && aws_lambda_function.role_manager.handler == "role_manager.handler"
    error_message = "Python 3.11, handler role_manager.handler."
  }

  assert {
    condition     = toset(aws_lambda_function.role_manager.vpc_config[0].subnet_ids) == toset(var.subnet_ids)
    error_message = "The function runs in the private subnets."
  }

  assert {
    condition     = aws_lambda_function.role_manager.environment[0].variables.MASTER_SECRET_ARN == var.master_secret_arn && !contains(keys(aws_lambda_function.role_manager.environment[0].variables), "DB_PASSWORD")
    error_message = "The function gets the secret's ARN, never a password."
  }

  assert {
    condition     = aws_lambda_function.role_manager.environment[0].variables.DB_SSLMODE == "verify-full" && aws_lambda_function.role_manager.environment[0].variables.PGSSLROOTCERT == "/var/task/rds-global-bundle.pem"
    error_message = "The function verifies the database's certificate and host name with the package's RDS CA bundle."
  }

  assert {
    condition     = aws_lambda_function.role_manager.reserved_concurrent_executions == 1
    error_message = "Role changes are serialised."
  }

  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.role_manager.policy).Statement : s.Resource if s.Sid == "ReadDatabaseSecrets"]) == [var.master_secret_arn]
    error_message = "The function reads the master secret only (no password secrets configured)."
  }

  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.role_manager.policy).Statement : s.Action if s.Sid == "ReadDatabaseSecrets"]) == "secretsmanager:GetSecretValue"
    error_message = "The function may only read the secrets' values."
  }

  assert {
    condition     = contains(one([for s in jsondecode(aws_iam_role_policy.role_manager.policy).Statement : s.Action if s.Sid == "VpcNetworkInterfaces"]), "ec2:CreateNetworkInterface")
    error_message = "Lambda needs the function's role to manage its network interfaces in the VPC."
  }

  assert {
    condition     = aws_iam_role.role_manager.permissions_boundary == "arn:aws:iam::123456789012:policy/opsbot-test-permissions-boundary"
    error_message = "The function's role must carry the environment's permissions boundary."
  }

  assert {
    condition = length(setsubtract(
      toset(flatten([for s in jsondecode(aws_iam_role_policy.role_manager.policy).Statement : s.Action])),
      toset(run.the_environments_permissions_boundary.actions),
    )) == 0
    error_message = "An action of the function's role is outside the permissions boundary (modules/permissions-boundary): it would be denied."
  }
}

run "invalid_role_names_are_refused_at_plan" {
  command = plan

  variables {
    app_role = "app; DROP ROLE x"
  }

  expect_failures = [var.app_role]
}

run "an_sslmode_that_does_not_encrypt_is_refused" {
  command = plan

  variables {
    db_sslmode = "prefer"
  }

  expect_failures = [var.db_sslmode]
}
