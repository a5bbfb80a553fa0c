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

resource "aws_iam_role_policy" "deploy_iam" {
  for_each = aws_iam_role.deploy

  name = "manage-stack-roles"
  role = each.value.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid    = "StackRoles"
        Effect = "Allow"
        Action = [
          "iam:GetRole", "iam:CreateRole", "iam:DeleteRole", "iam:UpdateRole",
          "iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:UntagRole", "iam:ListRoleTags",
          "iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:ListRolePolicies",
          "iam:ListAttachedRolePolicies", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
          "iam:ListInstanceProfilesForRole", "iam:PassRole",
        ]
        Resource = "arn:${local.partition}:iam::${local.account_id}:role/${var.deploy_iam_name_prefix}${each.key}-*"
      },
      {
        Sid      = "ReadPolicies"
        Effect   = "Allow"
        Action   = ["iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions"]
        Resource = "arn:${local.partition}:iam::aws:policy/*"
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
}
