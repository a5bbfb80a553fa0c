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

# What applying an environment needs, and nothing of the other environments in the
# account. Both environments may live in one account (deploy_environments), and the
# staging role is reachable without prod's required reviewers, so the grant is:
# - the services the environment's modules use (Resource "*": most of their resources
#   are named by generated IDs), S3 only on the environment's own buckets and its own
#   Terraform state, and IAM only on its own roles (deploy_iam below);
# - explicit denies of every other environment's resources: anything tagged with
#   another `environment` (every root tags all it makes, default_tags), anything named
#   <prefix><other environment> (for what cannot be tagged or is checked by name), the
#   other environments' KMS keys by alias and RDS-managed secrets by cluster;
# - no key administration of the shared state key, nothing on the shared image
#   repository.
locals {
  state_bucket = split(":::", var.state_bucket_arn)[1]

  deploy = {
    for env in var.deploy_environments : env => {
      own    = "${var.deploy_iam_name_prefix}${env}"
      others = [for other in var.deploy_environments : "${var.deploy_iam_name_prefix}${other}" if other != env]
      # The backend key of infra/envs/<env> and its S3 lock file; the DynamoDB lock
      # items are "<bucket>/<key>" and "<bucket>/<key>-md5".
      state_key        = "${var.state_key_prefix}${env}.tfstate"
      other_state_keys = [for other in var.deploy_environments : "${var.state_key_prefix}${other}.tfstate" if other != env]
      # The bot's metric namespace (OPSBOT_EMF_NAMESPACE) and anything below it.
      other_metric_namespaces = flatten([
        for other in var.deploy_environments : ["${var.metric_namespace_prefix}${other}", "${var.metric_namespace_prefix}${other}/*"] if other != env
      ])
    }
  }

  # How the environment's modules name the other environments' resources
  # (<prefix><environment>, e.g. opsbot-prod) in each service they use.
  named_resource_arns = {
    for env, d in local.deploy : env => flatten([
      for n in d.others : [
        "arn:${local.partition}:ecs:*:${local.account_id}:cluster/${n}",
        "arn:${local.partition}:ecs:*:${local.account_id}:service/${n}/*",
        "arn:${local.partition}:ecs:*:${local.account_id}:task/${n}/*",
        "arn:${local.partition}:ecs:*:${local.account_id}:task-definition/${n}:*",
        "arn:${local.partition}:secretsmanager:*:${local.account_id}:secret:${n}/*",
        "arn:${local.partition}:ssm:*:${local.account_id}:parameter/${n}/*",
        "arn:${local.partition}:lambda:*:${local.account_id}:function:${n}-*",
        "arn:${local.partition}:sqs:*:${local.account_id}:${n}-*",
        "arn:${local.partition}:sns:*:${local.account_id}:${n}-*",
        "arn:${local.partition}:logs:*:${local.account_id}:log-group:*${n}",
        "arn:${local.partition}:logs:*:${local.account_id}:log-group:*${n}:*",
        "arn:${local.partition}:logs:*:${local.account_id}:log-group:*${n}/*",
        "arn:${local.partition}:logs:*:${local.account_id}:log-group:*${n}-*",
        "arn:${local.partition}:rds:*:${local.account_id}:cluster:${n}",
        "arn:${local.partition}:rds:*:${local.account_id}:db:${n}-*",
        "arn:${local.partition}:rds:*:${local.account_id}:cluster-pg:${n}",
        "arn:${local.partition}:rds:*:${local.account_id}:subgrp:${n}",
        "arn:${local.partition}:rds:*:${local.account_id}:cluster-snapshot:*${n}-*",
        "arn:${local.partition}:elasticloadbalancing:*:${local.account_id}:loadbalancer/app/${n}/*",
        "arn:${local.partition}:elasticloadbalancing:*:${local.account_id}:targetgroup/${n}/*",
        "arn:${local.partition}:elasticloadbalancing:*:${local.account_id}:listener/app/${n}/*",
        "arn:${local.partition}:elasticloadbalancing:*:${local.account_id}:listener-rule/app/${n}/*",
        "arn:${local.partition}:wafv2:*:${local.account_id}:regional/webacl/${n}/*",
        "arn:${local.partition}:cloudwatch:*:${local.account_id}:alarm:${n}-*",
        "arn:${local.partition}:cloudwatch::${local.account_id}:dashboard/${n}",
        "arn:${local.partition}:kms:*:${local.account_id}:alias/${n}-*",
        "arn:${local.partition}:s3:::${n}-*",
        "arn:${local.partition}:iam::${local.account_id}:role/${n}-*",
      ]
    ])
  }
}

resource "aws_iam_role_policy" "deploy_environment" {
  for_each = aws_iam_role.deploy

  name = "apply-environment"
  role = each.value.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          # The services of modules/environment (network, database, service,
          # monitoring, role-manager, feature-flags); IAM is deploy_iam's.
          Sid    = "EnvironmentServices"
          Effect = "Allow"
          Action = [
            "application-autoscaling:*", "appconfig:*", "ec2:*", "ecs:*",
            "elasticloadbalancing:*", "kms:*", "lambda:*", "logs:*", "rds:*", "secretsmanager:*",
            "sns:*", "sqs:*", "ssm:*", "wafv2:*", "acm:DescribeCertificate",
          ]
          Resource = "*"
        },
        {
          # CloudWatch: the alarms and the dashboard the modules manage, and reading.
          # Not cloudwatch:*: PutMetricData takes no resource, so no deny by name or tag
          # below would keep it off another environment's metrics (a heartbeat written
          # into opsbot/prod hides prod's heartbeat-missing alarm), and nothing deployed
          # writes metrics; SetAlarmState neither.
          Sid    = "EnvironmentAlarmsAndDashboard"
          Effect = "Allow"
          Action = [
            "cloudwatch:Describe*", "cloudwatch:Get*", "cloudwatch:List*",
            "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms",
            "cloudwatch:PutDashboard", "cloudwatch:DeleteDashboards",
            "cloudwatch:TagResource", "cloudwatch:UntagResource",
          ]
          Resource = "*"
        },
        {
          # An interface endpoint with private DNS (modules/network) associates the VPC
          # with the endpoint's AWS-owned hosted zone: CreateVpcEndpoint's dependent action.
          Sid      = "VpcEndpointPrivateDns"
          Effect   = "Allow"
          Action   = ["route53:AssociateVPCWithHostedZone", "route53:DisassociateVPCFromHostedZone"]
          Resource = "*"
        },
        {
          # The load balancer's access log bucket (bucket_prefix <name>-alb-logs-).
          Sid    = "EnvironmentBuckets"
          Effect = "Allow"
          Action = "s3:*"
          Resource = [
            "arn:${local.partition}:s3:::${local.deploy[each.key].own}-*",
            "arn:${local.partition}:s3:::${local.deploy[each.key].own}-*/*",
          ]
        },
        {
          # Key names only (the backend lists its workspaces at init), never content.
          Sid      = "ListStateBucket"
          Effect   = "Allow"
          Action   = "s3:ListBucket"
          Resource = var.state_bucket_arn
        },
        {
          Sid    = "ReadWriteOwnState"
          Effect = "Allow"
          Action = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
          Resource = [
            "${var.state_bucket_arn}/${local.deploy[each.key].state_key}",
            "${var.state_bucket_arn}/${local.deploy[each.key].state_key}.tflock",
          ]
        },
      ],
      [for s in [
        {
          Sid      = "LockOwnState"
          Effect   = "Allow"
          Action   = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]
          Resource = var.lock_table_arn
          Condition = {
            "ForAllValues:StringEquals" = {
              "dynamodb:LeadingKeys" = [
                "${local.state_bucket}/${local.deploy[each.key].state_key}",
                "${local.state_bucket}/${local.deploy[each.key].state_key}-md5",
              ]
            }
          }
        },
      ] : s if var.lock_table_arn != null],
      [
        {
          # The state key encrypts every environment's state: using it is allowed
          # (kms:* above; DynamoDB may create grants on it for the lock table),
          # administering it is the administrators' only.
          Sid    = "KeepTheStateKey"
          Effect = "Deny"
          Action = [
            "kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:PutKeyPolicy", "kms:RevokeGrant",
            "kms:RetireGrant", "kms:UpdateKeyDescription", "kms:DisableKeyRotation", "kms:TagResource",
            "kms:UntagResource", "kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias",
          ]
          Resource = var.state_kms_key_arn
        },
        {
          # default_tags tag everything an environment makes with its name: whatever
          # carries another one is another environment's, listed or not.
          Sid      = "NothingTaggedForAnotherEnvironment"
          Effect   = "Deny"
          Action   = "*"
          Resource = "*"
          Condition = {
            StringNotEquals = { "aws:ResourceTag/environment" = each.key }
            Null            = { "aws:ResourceTag/environment" = "false" }
          }
        },
        {
          # The RDS-managed master secret is named rds!cluster-<id>, tagged with its cluster.
          Sid      = "NoOtherDatabasesMasterSecret"
          Effect   = "Deny"
          Action   = "secretsmanager:*"
          Resource = "*"
          Condition = {
            StringNotLike = { "aws:ResourceTag/aws:rds:primaryDBClusterArn" = "arn:${local.partition}:rds:*:${local.account_id}:cluster:${local.deploy[each.key].own}" }
            Null          = { "aws:ResourceTag/aws:rds:primaryDBClusterArn" = "false" }
          }
        },
      ],
      [for s in [
        {
          Sid      = "NothingNamedForAnotherEnvironment"
          Effect   = "Deny"
          Action   = "*"
          Resource = local.named_resource_arns[each.key]
        },
        {
          Sid      = "NoOtherEnvironmentsKeys"
          Effect   = "Deny"
          Action   = "kms:*"
          Resource = "*"
          Condition = {
            "ForAnyValue:StringLike" = { "kms:ResourceAliases" = [for n in local.deploy[each.key].others : "alias/${n}-*"] }
          }
        },
        {
          # Whatever else grants it: metrics are told apart by namespace only.
          Sid      = "NoMetricsOfAnotherEnvironment"
          Effect   = "Deny"
          Action   = "cloudwatch:PutMetricData"
          Resource = "*"
          Condition = {
            StringLike = { "cloudwatch:namespace" = local.deploy[each.key].other_metric_namespaces }
          }
        },
        {
          Sid    = "NoOtherEnvironmentsState"
          Effect = "Deny"
          Action = "s3:*"
          Resource = flatten([
            for key in local.deploy[each.key].other_state_keys : ["${var.state_bucket_arn}/${key}", "${var.state_bucket_arn}/${key}.tflock"]
          ])
        },
      ] : s if length(local.deploy[each.key].others) > 0],
    )
  })
}

# Managing roles is enough to escalate (give one any policy and trust, then assume it),
# so every role of an environment carries that environment's permissions boundary
# (modules/permissions-boundary): the deploy role may create a role, or change its
# policies, only when the role carries it, may not remove it, and may not change the
# boundary policy itself. A role it rewrites can never do more than the boundary allows.
module "stack_boundary" {
  source   = "../permissions-boundary"
  for_each = toset(var.deploy_environments)

  name                    = "${var.deploy_iam_name_prefix}${each.key}"
  passable_role_arns      = lookup(var.deploy_passable_role_arns, each.key, [])
  other_environment_names = local.deploy[each.key].others
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
