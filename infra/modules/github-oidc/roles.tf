locals {
  repo_subject_prefix = "repo:${var.github_repository}"
}

# publish: build-and-publish.yml pushes images from the default branch only.
resource "aws_iam_role" "publish" {
  name                 = "${var.name}-github-publish"
  description          = "GitHub Actions (${var.github_repository}, ${var.publish_branch}) pushes images to ECR"
  max_session_duration = 3600
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = local.provider_arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "token.actions.githubusercontent.com:aud" = "sts.amazonaws.com"
          "token.actions.githubusercontent.com:sub" = "${local.repo_subject_prefix}:ref:refs/heads/${var.publish_branch}"
        }
      }
    }]
  })
}

resource "aws_iam_role_policy" "publish" {
  name = "push-images"
  role = aws_iam_role.publish.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "EcrLogin"
        Effect   = "Allow"
        Action   = "ecr:GetAuthorizationToken" # no resource-level permissions
        Resource = "*"
      },
      {
        Sid    = "PushToBuildRepository"
        Effect = "Allow"
        Action = [
          "ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
          "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage", "ecr:DescribeImages",
        ]
        Resource = var.repository_arns
      },
      {
        Sid      = "UseRepositoryKey"
        Effect   = "Allow"
        Action   = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource = var.repository_kms_key_arns
      },
    ]
  })
}

# deploy: deploy.yml runs terraform plan/apply and `opsbot deploy`, only from jobs bound
# to a GitHub environment of the same name, so environment protection rules (required
# reviewers) gate every apply.
resource "aws_iam_role" "deploy" {
  for_each = toset(var.deploy_environments)

  name                 = "${var.name}-github-deploy-${each.key}"
  description          = "GitHub Actions (${var.github_repository}, environment ${each.key}) applies Terraform and deploys"
  max_session_duration = 3600
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = local.provider_arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "token.actions.githubusercontent.com:aud" = "sts.amazonaws.com"
          "token.actions.githubusercontent.com:sub" = "${local.repo_subject_prefix}:environment:${each.key}"
        }
      }
    }]
  })
}

# Terraform manages most services of the stack, so the deploy role gets AWS's
# PowerUserAccess (everything except IAM, Organizations and account settings) plus IAM
# limited to its own environment's roles, by name prefix (`opsbot-<environment>-`):
# it cannot change the deploy roles (its own included, named `opsbot-github-...`) or
# another environment's roles.
resource "aws_iam_role_policy_attachment" "deploy_power_user" {
  for_each = aws_iam_role.deploy

  role       = each.value.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/PowerUserAccess"
}

# Managing roles is enough to escalate (give one any policy and trust, then assume it),
# so every role of an environment carries that environment's permissions boundary
# (modules/permissions-boundary): the deploy role may create a role, or change its
# policies, only when the role carries it, may not remove it, and may not change the
# boundary policy itself. A role it rewrites can never do more than the boundary allows.
module "stack_boundary" {
  source   = "../permissions-boundary"
  for_each = toset(var.deploy_environments)

  name               = "${var.deploy_iam_name_prefix}${each.key}"
  passable_role_arns = lookup(var.deploy_passable_role_arns, each.key, [])
}

locals {
  boundary_arns = { for env in var.deploy_environments : env => "arn:${local.partition}:iam::${local.account_id}:policy/${var.deploy_iam_name_prefix}${env}-permissions-boundary" }
}

resource "aws_iam_role_policy" "deploy_iam" {
  for_each = aws_iam_role.deploy

  name = "manage-stack-roles"
  role = each.value.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # Reading, tagging, trusting, removing policies and deleting: none of these can
        # give a bounded role more than its boundary.
        Sid    = "StackRoles"
        Effect = "Allow"
        Action = [
          "iam:GetRole", "iam:DeleteRole", "iam:UpdateRole",
          "iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:UntagRole", "iam:ListRoleTags",
          "iam:GetRolePolicy", "iam:DeleteRolePolicy", "iam:ListRolePolicies",
          "iam:ListAttachedRolePolicies", "iam:DetachRolePolicy",
          "iam:ListInstanceProfilesForRole", "iam:PassRole",
        ]
        Resource = "arn:${local.partition}:iam::${local.account_id}:role/${var.deploy_iam_name_prefix}${each.key}-*"
      },
      {
        # iam:PermissionsBoundary is the boundary set by CreateRole and
        # PutRolePermissionsBoundary, and the role's current one for the policy calls.
        Sid    = "StackRolesWithinTheBoundary"
        Effect = "Allow"
        Action = [
          "iam:CreateRole", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy", "iam:AttachRolePolicy",
        ]
        Resource  = "arn:${local.partition}:iam::${local.account_id}:role/${var.deploy_iam_name_prefix}${each.key}-*"
        Condition = { StringEquals = { "iam:PermissionsBoundary" = local.boundary_arns[each.key] } }
      },
      {
        # Explicit, so that no other grant (a future edit, a group policy) can open it.
        Sid       = "NeverWithoutTheBoundary"
        Effect    = "Deny"
        Action    = ["iam:CreateRole", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy", "iam:AttachRolePolicy"]
        Resource  = "*"
        Condition = { StringNotEquals = { "iam:PermissionsBoundary" = local.boundary_arns[each.key] } }
      },
      {
        Sid       = "OnlyTheManagedPoliciesTheBoundaryCovers"
        Effect    = "Deny"
        Action    = "iam:AttachRolePolicy"
        Resource  = "*"
        Condition = { ArnNotEquals = { "iam:PolicyARN" = module.stack_boundary[each.key].managed_policy_arns } }
      },
      {
        Sid      = "KeepTheBoundary"
        Effect   = "Deny"
        Action   = ["iam:DeleteRolePermissionsBoundary"]
        Resource = "*"
      },
      {
        Sid    = "BoundariesAreTheAdministratorsOnly"
        Effect = "Deny"
        Action = [
          "iam:CreatePolicy", "iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:DeletePolicyVersion",
          "iam:SetDefaultPolicyVersion", "iam:TagPolicy", "iam:UntagPolicy",
        ]
        Resource = values(local.boundary_arns)
      },
      {
        Sid      = "ReadPolicies"
        Effect   = "Allow"
        Action   = ["iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions"]
        Resource = ["arn:${local.partition}:iam::aws:policy/*", local.boundary_arns[each.key]]
      },
      {
        Sid      = "ServiceLinkedRoles"
        Effect   = "Allow"
        Action   = "iam:CreateServiceLinkedRole"
        Resource = "arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/*"
        Condition = {
          StringEquals = {
            "iam:AWSServiceName" = [
              "ecs.amazonaws.com", "elasticloadbalancing.amazonaws.com", "rds.amazonaws.com",
              "ecs.application-autoscaling.amazonaws.com", "appconfig.amazonaws.com",
            ]
          }
        }
      },
    ]
  })

  # The boundary exists before the deploy role is told to require it.
  depends_on = [module.stack_boundary]
}
