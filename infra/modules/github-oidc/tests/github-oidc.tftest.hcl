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
  state_bucket_arn        = "arn:aws:s3:::acme-opsbot-tfstate"
  state_kms_key_arn       = "arn:aws:kms:eu-west-1:123456789012:key/state"
  lock_table_arn          = "arn:aws:dynamodb:eu-west-1:123456789012:table/opsbot-tf-locks"
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

# Both environments in one account: the staging role (no required reviewers) must not
# read prod's secrets, change prod's function, parameters or service, or read prod's
# state; what an apply of staging needs stays allowed.
run "each_deploy_role_reaches_its_own_environment_only" {
  command = apply

  # Nothing grants every action, IAM, the image repository or S3 account-wide.
  assert {
    condition = !anytrue(flatten([
      for env in ["staging", "prod"] : [
        for s in concat(jsondecode(aws_iam_role_policy.deploy_environment[env].policy).Statement, jsondecode(aws_iam_role_policy.deploy_iam[env].policy).Statement) : [
          for a in flatten([s.Action]) : a == "*" || a == "iam:*" || startswith(a, "ecr:") || (startswith(a, "s3:") && contains(flatten([s.Resource]), "*"))
        ] if s.Effect == "Allow"
      ]
    ]))
    error_message = "A deploy role must not get account-wide power (PowerUserAccess, iam:*, S3 or the image repository on every resource)."
  }

  # Prod's resources, as its modules name them: each is denied to the staging role.
  assert {
    condition = alltrue([
      for arn in [
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:opsbot-prod/app-AbCdEf",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:opsbot-prod/database-login-AbCdEf",
        "arn:aws:ssm:eu-west-1:123456789012:parameter/opsbot-prod/config",
        "arn:aws:lambda:eu-west-1:123456789012:function:opsbot-prod-role-manager",
        "arn:aws:ecs:eu-west-1:123456789012:cluster/opsbot-prod",
        "arn:aws:ecs:eu-west-1:123456789012:service/opsbot-prod/opsbot-prod",
        "arn:aws:ecs:eu-west-1:123456789012:task-definition/opsbot-prod:12",
        "arn:aws:ecs:eu-west-1:123456789012:task/opsbot-prod/0123456789abcdef",
        "arn:aws:sqs:eu-west-1:123456789012:opsbot-prod-alarms",
        "arn:aws:sns:eu-west-1:123456789012:opsbot-prod-alarms",
        "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/opsbot-prod",
        "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/rds/cluster/opsbot-prod/postgresql:*",
        "arn:aws:rds:eu-west-1:123456789012:cluster:opsbot-prod",
        "arn:aws:rds:eu-west-1:123456789012:db:opsbot-prod-0",
        "arn:aws:rds:eu-west-1:123456789012:cluster-snapshot:rds:opsbot-prod-2026-12-01-03-10",
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/opsbot-prod/50dc6c495c0c9188",
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/opsbot-prod/73e2d6bc24d8a067",
        "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/opsbot-prod/a1b2c3",
        "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:opsbot-prod-heartbeat-missing",
        "arn:aws:kms:eu-west-1:123456789012:alias/opsbot-prod-service",
        "arn:aws:s3:::opsbot-prod-alb-logs-20240101",
        "arn:aws:s3:::acme-opsbot-tfstate/opsbot/prod.tfstate",
        "arn:aws:s3:::acme-opsbot-tfstate/opsbot/prod.tfstate.tflock",
        "arn:aws:iam::123456789012:role/opsbot-prod-task",
      ] :
      anytrue([
        for s in jsondecode(aws_iam_role_policy.deploy_environment["staging"].policy).Statement : anytrue([
          for pattern in flatten([s.Resource]) : can(regex("^${replace(pattern, "*", ".*")}$", arn))
        ]) if s.Effect == "Deny" && !contains(keys(s), "Condition")
      ])
    ])
    error_message = "The staging deploy role must be denied every prod resource its modules name, and prod's state."
  }

  # ... while staging's own are not.
  assert {
    condition = !anytrue(flatten([
      for arn in [
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:opsbot-staging/app-AbCdEf",
        "arn:aws:ssm:eu-west-1:123456789012:parameter/opsbot-staging/config",
        "arn:aws:lambda:eu-west-1:123456789012:function:opsbot-staging-role-manager",
        "arn:aws:ecs:eu-west-1:123456789012:service/opsbot-staging/opsbot-staging",
        "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/opsbot-staging",
        "arn:aws:rds:eu-west-1:123456789012:cluster:opsbot-staging",
        "arn:aws:s3:::opsbot-staging-alb-logs-20240101",
        "arn:aws:s3:::acme-opsbot-tfstate/opsbot/staging.tfstate",
        "arn:aws:iam::123456789012:role/opsbot-staging-task",
        ] : [
        for s in jsondecode(aws_iam_role_policy.deploy_environment["staging"].policy).Statement : [
          for pattern in flatten([s.Resource]) : can(regex("^${replace(pattern, "*", ".*")}$", arn))
        ] if s.Effect == "Deny" && !contains(keys(s), "Condition")
      ]
    ]))
    error_message = "Staging's own resources must not match the staging role's unconditional denies."
  }

  # Tags reach what names cannot (VPCs, security groups, KMS keys, AppConfig), for
  # every other environment, listed here or not.
  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.deploy_environment["staging"].policy).Statement : s.Condition
      if s.Effect == "Deny" && s.Action == "*" && s.Resource == "*"
      ]) == {
      StringNotEquals = { "aws:ResourceTag/environment" = "staging" }
      Null            = { "aws:ResourceTag/environment" = "false" }
    }
    error_message = "The staging role must be denied anything tagged with another environment."
  }

  assert {
    condition = (
      one([for s in jsondecode(aws_iam_role_policy.deploy_environment["staging"].policy).Statement : s.Condition["ForAnyValue:StringLike"]["kms:ResourceAliases"] if s.Sid == "NoOtherEnvironmentsKeys"]) == ["alias/opsbot-prod-*"]
      && one([for s in jsondecode(aws_iam_role_policy.deploy_environment["staging"].policy).Statement : s.Condition.StringNotLike["aws:ResourceTag/aws:rds:primaryDBClusterArn"] if s.Sid == "NoOtherDatabasesMasterSecret"]) == "arn:aws:rds:*:123456789012:cluster:opsbot-staging"
    )
    error_message = "Prod's KMS keys (by alias) and any other database's RDS-managed master secret are denied to staging."
  }

  # Its own state: the object, its lock file, its DynamoDB lock items; nothing else.
  assert {
    condition = (
      one([for s in jsondecode(aws_iam_role_policy.deploy_environment["staging"].policy).Statement : s.Resource if s.Sid == "ReadWriteOwnState"])
      == ["arn:aws:s3:::acme-opsbot-tfstate/opsbot/staging.tfstate", "arn:aws:s3:::acme-opsbot-tfstate/opsbot/staging.tfstate.tflock"]
      && one([for s in jsondecode(aws_iam_role_policy.deploy_environment["staging"].policy).Statement : s.Condition["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"] if s.Sid == "LockOwnState"])
      == ["acme-opsbot-tfstate/opsbot/staging.tfstate", "acme-opsbot-tfstate/opsbot/staging.tfstate-md5"]
      && !anytrue([
        for s in jsondecode(aws_iam_role_policy.deploy_environment["staging"].policy).Statement :
        anytrue([for r in flatten([s.Resource]) : startswith(r, "arn:aws:s3:::acme-opsbot-tfstate/") && !strcontains(r, "/opsbot/staging.tfstate")])
        if s.Effect == "Allow"
      ])
    )
    error_message = "The staging role reads, writes and locks staging's state only."
  }

  assert {
    condition = anytrue([
      for s in jsondecode(aws_iam_role_policy.deploy_environment["prod"].policy).Statement :
      s.Effect == "Deny" && s.Resource == "arn:aws:kms:eu-west-1:123456789012:key/state" && contains(flatten([s.Action]), "kms:ScheduleKeyDeletion") && contains(flatten([s.Action]), "kms:PutKeyPolicy")
    ])
    error_message = "No deploy role may administer the key of every environment's state."
  }

  # Each environment's permissions boundary also keeps its roles off the others'.
  assert {
    condition     = contains(one([for s in jsondecode(module.stack_boundary["staging"].policy).Statement : s.Resource if s.Sid == "NothingNamedForAnotherEnvironment"]), "arn:aws:secretsmanager:*:123456789012:secret:opsbot-prod/*")
    error_message = "Staging's roles (which the staging deploy role may rewrite) must be kept off prod's secrets by their boundary."
  }

  # A role's inline policies share 10,240 characters.
  assert {
    condition     = alltrue([for env in ["staging", "prod"] : length(aws_iam_role_policy.deploy_environment[env].policy) + length(aws_iam_role_policy.deploy_iam[env].policy) < 10240])
    error_message = "The deploy role's inline policies outgrow IAM's limit."
  }
}

# A metric names no resource, so the denies by name and tag cannot keep staging's role
# off prod's: a heartbeat written into opsbot/prod would hide prod's heartbeat-missing
# alarm. No deploy role writes metrics, and none may write another environment's.
run "no_deploy_role_writes_another_environments_metrics" {
  command = apply

  assert {
    condition = !anytrue(flatten([
      for env in ["staging", "prod"] : [
        for s in concat(jsondecode(aws_iam_role_policy.deploy_environment[env].policy).Statement, jsondecode(aws_iam_role_policy.deploy_iam[env].policy).Statement) : [
          for a in flatten([s.Action]) : contains(["*", "cloudwatch:*", "cloudwatch:Put*", "cloudwatch:PutMetricData"], a)
        ] if s.Effect == "Allow"
      ]
    ]))
    error_message = "A deploy role must not be allowed cloudwatch:PutMetricData (nor cloudwatch:*)."
  }

  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.deploy_environment["staging"].policy).Statement : s
      if s.Effect == "Deny" && s.Action == "cloudwatch:PutMetricData"
      ]) == {
      Sid       = "NoMetricsOfAnotherEnvironment"
      Effect    = "Deny"
      Action    = "cloudwatch:PutMetricData"
      Resource  = "*"
      Condition = { StringLike = { "cloudwatch:namespace" = ["opsbot/prod", "opsbot/prod/*"] } }
    }
    error_message = "The staging deploy role must be denied cloudwatch:PutMetricData into prod's namespace, whatever else grants it."
  }

  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.deploy_environment["prod"].policy).Statement : s.Condition.StringLike["cloudwatch:namespace"]
      if s.Sid == "NoMetricsOfAnotherEnvironment"
    ]) == ["opsbot/staging", "opsbot/staging/*"]
    error_message = "The prod deploy role must be denied staging's namespace (and never its own)."
  }

  # The boundary of the roles a deploy role manages grants no metric writes either.
  assert {
    condition     = !anytrue([for env in ["staging", "prod"] : contains(flatten([for s in jsondecode(module.stack_boundary[env].policy).Statement : flatten([s.Action]) if s.Effect == "Allow"]), "cloudwatch:PutMetricData")])
    error_message = "The environments' roles must not be able to write metrics (their boundary does not grant it)."
  }
}

run "an_environment_alone_in_its_account" {
  command = apply

  variables {
    deploy_environments = ["prod"]
    lock_table_arn      = null
  }

  assert {
    condition     = [for s in jsondecode(aws_iam_role_policy.deploy_environment["prod"].policy).Statement : s.Sid] == ["EnvironmentServices", "EnvironmentAlarmsAndDashboard", "VpcEndpointPrivateDns", "EnvironmentBuckets", "ListStateBucket", "ReadWriteOwnState", "KeepTheStateKey", "NothingTaggedForAnotherEnvironment", "NoOtherDatabasesMasterSecret"]
    error_message = "Alone (and without the DynamoDB lock table), the role gets its services, buckets and state, and the generic denies."
  }
}

run "environments_are_told_apart_by_name_prefix" {
  command = plan

  variables {
    deploy_environments = ["staging", "staging-eu"]
  }

  expect_failures = [var.deploy_environments]
}

run "no_environment_is_named_github" {
  command = plan

  variables {
    deploy_environments = ["staging", "github"]
  }

  expect_failures = [var.deploy_environments]
}
