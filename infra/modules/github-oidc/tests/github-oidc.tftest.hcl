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

# Managing its environment's roles must not let a deploy role escalate: whatever it
# creates or rewrites carries the environment's permissions boundary, which it can
# neither remove nor change.
run "deploy_roles_change_stack_roles_only_within_the_boundary" {
  command = apply

  variables {
    deploy_passable_role_arns = { prod = ["arn:aws:iam::123456789012:role/shop-web-task"] }
  }

  # Every grant that can widen a role (create it, give it a policy, set its boundary)
  # requires the environment's boundary on that role.
  assert {
    condition = alltrue(flatten([
      for env in ["staging", "prod"] : [
        for s in jsondecode(aws_iam_role_policy.deploy_iam[env].policy).Statement :
        try(s.Condition.StringEquals["iam:PermissionsBoundary"], null) == "arn:aws:iam::123456789012:policy/opsbot-${env}-permissions-boundary"
        if s.Effect == "Allow" && length(setintersection(toset(flatten([s.Action])), toset([
          "iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary",
          "iam:DeleteRolePermissionsBoundary", "iam:CreatePolicy", "iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion",
          "iam:*", "*",
        ]))) > 0
      ]
    ]))
    error_message = "A deploy role may create a role or widen its policies only when the role carries its environment's permissions boundary."
  }

  assert {
    condition = toset(one([
      for s in jsondecode(aws_iam_role_policy.deploy_iam["staging"].policy).Statement : s.Action if s.Sid == "StackRolesWithinTheBoundary"
    ])) == toset(["iam:CreateRole", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy", "iam:AttachRolePolicy"])
    error_message = "Creating roles, putting and attaching policies and setting the boundary are the bounded grants."
  }

  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.deploy_iam["staging"].policy).Statement : s.Condition.StringNotEquals["iam:PermissionsBoundary"]
      if s.Effect == "Deny" && s.Resource == "*" && toset(flatten([s.Action])) == toset(["iam:CreateRole", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy", "iam:AttachRolePolicy"])
    ]) == "arn:aws:iam::123456789012:policy/opsbot-staging-permissions-boundary"
    error_message = "An explicit deny refuses creating or widening any role without the boundary, whatever else allows it."
  }

  assert {
    condition = anytrue([
      for s in jsondecode(aws_iam_role_policy.deploy_iam["staging"].policy).Statement :
      s.Effect == "Deny" && s.Resource == "*" && contains(flatten([s.Action]), "iam:DeleteRolePermissionsBoundary") && !contains(keys(s), "Condition")
    ])
    error_message = "No deploy role may remove a permissions boundary."
  }

  assert {
    condition = alltrue([
      for env in ["staging", "prod"] : anytrue([
        for s in jsondecode(aws_iam_role_policy.deploy_iam[env].policy).Statement :
        s.Effect == "Deny" && !contains(keys(s), "Condition") &&
        length(setsubtract(toset(["iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:DeletePolicyVersion", "iam:SetDefaultPolicyVersion"]), toset(flatten([s.Action])))) == 0 &&
        length(setsubtract(toset(["arn:aws:iam::123456789012:policy/opsbot-staging-permissions-boundary", "arn:aws:iam::123456789012:policy/opsbot-prod-permissions-boundary"]), toset(flatten([s.Resource])))) == 0
      ])
    ])
    error_message = "No deploy role may change or delete any environment's boundary policy."
  }

  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.deploy_iam["prod"].policy).Statement : s.Condition.ArnNotEquals["iam:PolicyARN"]
      if s.Effect == "Deny" && s.Action == "iam:AttachRolePolicy"
    ]) == ["arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"]
    error_message = "Only the AWS managed policies the boundary covers may be attached to a stack role."
  }

  assert {
    condition     = module.stack_boundary["staging"].name == "opsbot-staging-permissions-boundary" && module.stack_boundary["prod"].name == "opsbot-prod-permissions-boundary"
    error_message = "Each environment gets its boundary, named as the deploy role's conditions and modules/environment expect."
  }

  assert {
    condition = [
      for env in ["staging", "prod"] : one([for s in jsondecode(module.stack_boundary[env].policy).Statement : s.Resource if s.Action == "iam:PassRole"])
      ] == [
      ["arn:aws:iam::123456789012:role/opsbot-staging-*"],
      ["arn:aws:iam::123456789012:role/opsbot-prod-*", "arn:aws:iam::123456789012:role/shop-web-task"],
    ]
    error_message = "Each environment's roles may pass its own roles, and only the other roles listed for that environment."
  }
}
