output "arn" {
  description = "ARN of the boundary policy: the permissions_boundary of every role of the environment."
  value       = aws_iam_policy.this.arn
}

output "name" {
  description = "Name of the boundary policy, <name>-permissions-boundary."
  value       = aws_iam_policy.this.name
}

output "policy" {
  description = "The boundary (JSON), for callers' tests and reviews."
  value       = aws_iam_policy.this.policy
}

output "actions" {
  description = "Every action the boundary allows (iam:PassRole included): each stack role's test checks that its actions are among them."
  value       = concat(local.actions, ["iam:PassRole"])
}

output "managed_policy_arns" {
  description = "AWS managed policies a stack role may attach, whose actions the boundary covers."
  value       = local.managed_policy_arns
}
