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
  mock_data "aws_availability_zones" {
    defaults = { names = ["eu-west-1a", "eu-west-1b"] }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/flow-logs" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/vpc/opsbot-test/flow-logs" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/opsbot-test-vpc-flow-logs" }
  }
  mock_resource "aws_vpc" {
    defaults = { cidr_block = "10.20.0.0/16" }
  }
}

variables {
  name                     = "opsbot-test"
  availability_zones       = ["eu-west-1a", "eu-west-1b"]
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

run "the_flow_logs_role_carries_the_boundary_and_fits_inside_it" {
  command = apply

  assert {
    condition     = aws_iam_role.flow_logs.permissions_boundary == "arn:aws:iam::123456789012:policy/opsbot-test-permissions-boundary"
    error_message = "The flow logs role must carry the environment's permissions boundary."
  }

  assert {
    condition = length(setsubtract(
      toset(flatten([for s in jsondecode(aws_iam_role_policy.flow_logs.policy).Statement : s.Action])),
      toset(run.the_environments_permissions_boundary.actions),
    )) == 0
    error_message = "An action of the flow logs role is outside the permissions boundary (modules/permissions-boundary): it would be denied."
  }
}

run "private_subnets_reach_aws_through_endpoints" {
  command = apply

  assert {
    condition     = length(aws_subnet.private) == 2 && length(aws_subnet.public) == 2
    error_message = "One public and one private subnet per zone."
  }

  assert {
    condition     = alltrue([for s in aws_subnet.public : !s.map_public_ip_on_launch])
    error_message = "Nothing gets a public address by default."
  }

  assert {
    condition     = alltrue([for svc in ["secretsmanager", "ssm", "kms", "logs", "ecr.api", "ecr.dkr", "lambda", "appconfig", "sqs", "ecs"] : contains(keys(aws_vpc_endpoint.interface), svc)])
    error_message = "The Lambda and the tasks reach every AWS API they use through an endpoint."
  }

  assert {
    condition     = alltrue([for e in aws_vpc_endpoint.interface : e.private_dns_enabled])
    error_message = "Endpoints take over the public API names (private DNS)."
  }

  assert {
    condition     = aws_vpc_endpoint.s3.vpc_endpoint_type == "Gateway"
    error_message = "S3 (ECR layers) through a gateway endpoint."
  }

  assert {
    condition     = aws_flow_log.main.traffic_type == "ALL"
    error_message = "Flow logs record all traffic."
  }
}

run "single_nat_gateway_for_cheap_environments" {
  command = apply

  variables {
    single_nat_gateway = true
  }

  assert {
    condition     = length(aws_nat_gateway.main) == 1 && length(aws_route.private_nat) == 2
    error_message = "One NAT gateway serves every private route table."
  }
}
