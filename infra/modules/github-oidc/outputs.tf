output "publish_role_arn" {
  description = "Role for build-and-publish.yml (GitHub variable AWS_PUBLISH_ROLE_ARN)."
  value       = aws_iam_role.publish.arn
}

output "deploy_role_arns" {
  description = "Environment => role for deploy.yml (GitHub environment variable AWS_DEPLOY_ROLE_ARN)."
  value       = { for env, role in aws_iam_role.deploy : env => role.arn }
}

output "oidc_provider_arn" {
  description = "ARN of the account's GitHub OIDC provider."
  value       = local.provider_arn
}

output "permissions_boundary_arns" {
  description = "Environment => the permissions boundary every IAM role of that environment must carry (modules/environment derives the same ARN)."
  value       = { for env, boundary in module.stack_boundary : env => boundary.arn }
}

output "permissions_boundary_policies" {
  description = "Environment => the permissions boundary's policy document (JSON), to review what an environment's roles may do and pass."
  value       = { for env, boundary in module.stack_boundary : env => boundary.policy }
}

output "deploy_environment_policies" {
  description = "Environment => what its deploy role may do outside IAM (JSON): its services, its buckets and state, and the denies of every other environment's resources."
  value       = { for env, policy in aws_iam_role_policy.deploy_environment : env => policy.policy }
}
