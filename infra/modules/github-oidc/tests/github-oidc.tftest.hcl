mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_iam_openid_connect_provider" {
    defaults = { arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/opsbot-github" }
  }
}

variables {
  name                    = "opsbot"
  github_repository       = "acme/opsbot"
  repository_arns         = ["arn:aws:ecr:eu-west-1:123456789012:repository/opsbot"]
  repository_kms_key_arns = ["arn:aws:kms:eu-west-1:123456789012:key/ecr"]
}

run "roles_trust_only_this_repository" {
  command = apply

  assert {
    condition     = jsondecode(aws_iam_role.publish.assume_role_policy).Statement[0].Condition.StringEquals["token.actions.githubusercontent.com:sub"] == "repo:acme/opsbot:ref:refs/heads/main"
    error_message = "Only main of this repository may publish images."
  }

  assert {
    condition     = jsondecode(aws_iam_role.deploy["prod"].assume_role_policy).Statement[0].Condition.StringEquals["token.actions.githubusercontent.com:sub"] == "repo:acme/opsbot:environment:prod"
    error_message = "Only jobs bound to the prod GitHub environment may deploy prod."
  }

  assert {
    condition     = alltrue([for r in concat([aws_iam_role.publish], values(aws_iam_role.deploy)) : jsondecode(r.assume_role_policy).Statement[0].Condition.StringEquals["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"])
    error_message = "Tokens must be issued for sts.amazonaws.com."
  }

  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.deploy_iam["staging"].policy).Statement : s.Resource if s.Sid == "StackRoles"]) == "arn:aws:iam::123456789012:role/opsbot-staging-*"
    error_message = "Each deploy role manages its own environment's IAM roles only: not the deploy roles, not the other environment's."
  }
}
