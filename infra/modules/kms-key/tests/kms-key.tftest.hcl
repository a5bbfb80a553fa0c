# The shared key shape: rotation on, the account administers, and each optional grant
# appears only when asked for, scoped as its caller needs.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/mocked", key_id = "mocked" }
  }
}

variables {
  description = "opsbot-test things"
  alias       = "opsbot-test-things"
}

run "a_bare_key_is_rotated_and_only_administered_by_the_account" {
  command = apply

  assert {
    condition     = aws_kms_key.this.enable_key_rotation && aws_kms_key.this.deletion_window_in_days == 30
    error_message = "Keys rotate yearly and keep the longest deletion window."
  }

  assert {
    condition     = [for s in jsondecode(aws_kms_key.this.policy).Statement : s.Sid] == ["AccountAdministers"]
    error_message = "Without grants asked for, the account administers the key and nothing else."
  }

  assert {
    condition     = aws_kms_alias.this.name == "alias/opsbot-test-things" && aws_kms_alias.this.target_key_id == "mocked"
    error_message = "The alias names the key."
  }
}

run "logs_and_services_get_scoped_grants" {
  command = apply

  variables {
    log_group_name_pattern = "/aws/lambda/opsbot-test"
    service_principals     = ["cloudwatch.amazonaws.com", "sns.amazonaws.com"]
  }

  assert {
    condition = one([
      for s in jsondecode(aws_kms_key.this.policy).Statement : s.Condition.ArnLike["kms:EncryptionContext:aws:logs:arn"] if s.Sid == "CloudWatchLogsEncrypts"
    ]) == "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/opsbot-test"
    error_message = "CloudWatch Logs may use the key for the named log groups only."
  }

  assert {
    condition = one([
      for s in jsondecode(aws_kms_key.this.policy).Statement : s if s.Sid == "ServicesEncrypt"
      ]).Condition.StringEquals["aws:SourceAccount"] == "123456789012" && toset(one([
        for s in jsondecode(aws_kms_key.this.policy).Statement : s.Principal.Service if s.Sid == "ServicesEncrypt"
    ])) == toset(["cloudwatch.amazonaws.com", "sns.amazonaws.com"])
    error_message = "The named services use the key for this account's resources only."
  }
}

run "an_alias_outside_the_callers_namespace_is_refused" {
  command = plan

  variables {
    alias = "aws/ebs"
  }

  expect_failures = [var.alias]
}
