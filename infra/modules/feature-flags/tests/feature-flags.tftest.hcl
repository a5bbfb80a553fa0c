mock_provider "aws" {
  # AppConfig IDs are validated by the provider: 4-7 lower-case letters or digits.
  mock_resource "aws_appconfig_application" {
    defaults = { id = "app1234", arn = "arn:aws:appconfig:eu-west-1:123456789012:application/app1234" }
  }
  mock_resource "aws_appconfig_environment" {
    defaults = { environment_id = "env1234" }
  }
  mock_resource "aws_appconfig_configuration_profile" {
    defaults = { configuration_profile_id = "prf1234" }
  }
  mock_resource "aws_appconfig_deployment_strategy" {
    defaults = { id = "str1234" }
  }
  mock_resource "aws_appconfig_hosted_configuration_version" {
    defaults = { version_number = 1 }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/opsbot-staging-appconfig-monitor" }
  }
}

variables {
  service_name             = "shop-web"
  environment_name         = "staging"
  flags                    = ["CHECKOUT_V2", "NEW_SEARCH"]
  permissions_boundary_arn = "arn:aws:iam::123456789012:policy/opsbot-staging-permissions-boundary"
}

run "the_environments_permissions_boundary" {
  command = apply

  module {
    source = "../permissions-boundary"
  }

  variables {
    name = "opsbot-staging"
  }
}

run "ssm_backend_creates_one_parameter_per_flag" {
  command = apply

  variables {
    backend = "ssm"
  }

  assert {
    condition     = toset([for p in aws_ssm_parameter.flags : p.name]) == toset(["/service/shop-web/feature-flag/CHECKOUT_V2", "/service/shop-web/feature-flag/NEW_SEARCH"])
    error_message = "SSM flags live at /service/<service>/feature-flag/<FLAG>."
  }

  assert {
    condition     = alltrue([for p in aws_ssm_parameter.flags : p.type == "String" && p.value == "false"])
    error_message = "Flags start off, as String parameters."
  }

  assert {
    condition     = length(aws_appconfig_application.flags) == 0
    error_message = "The ssm backend creates no AppConfig resources."
  }
}

run "appconfig_backend_creates_a_feature_flag_profile" {
  command = apply

  variables {
    backend = "appconfig"
  }

  assert {
    condition     = aws_appconfig_configuration_profile.flags[0].type == "AWS.AppConfig.FeatureFlags" && aws_appconfig_configuration_profile.flags[0].location_uri == "hosted"
    error_message = "The profile must be a hosted AWS.AppConfig.FeatureFlags profile."
  }

  assert {
    condition     = jsondecode(aws_appconfig_hosted_configuration_version.initial[0].content).values.CHECKOUT_V2.enabled == false
    error_message = "Flags start off."
  }

  assert {
    condition     = length(aws_appconfig_deployment_strategy.flags) == 1 && length(aws_ssm_parameter.flags) == 0
    error_message = "Each environment gets its deployment strategy and no SSM flags."
  }
}

run "the_rollback_monitor_role_carries_the_boundary_and_fits_inside_it" {
  command = apply

  variables {
    backend             = "appconfig"
    rollback_alarm_arns = ["arn:aws:cloudwatch:eu-west-1:123456789012:alarm:shop-web-5xx"]
  }

  assert {
    condition     = aws_iam_role.appconfig_monitor[0].permissions_boundary == "arn:aws:iam::123456789012:policy/opsbot-staging-permissions-boundary"
    error_message = "The AppConfig monitor role must carry the environment's permissions boundary."
  }

  assert {
    condition = length(setsubtract(
      toset(flatten([for s in jsondecode(aws_iam_role_policy.appconfig_monitor[0].policy).Statement : s.Action])),
      toset(run.the_environments_permissions_boundary.actions),
    )) == 0
    error_message = "An action of the AppConfig monitor role is outside the permissions boundary (modules/permissions-boundary): it would be denied."
  }
}

run "unknown_backend_is_refused" {
  command = plan

  variables {
    backend = "evidently"
  }

  expect_failures = [var.backend]
}
