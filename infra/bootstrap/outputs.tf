output "state_bucket" {
  description = "Name of the state bucket (backend \"bucket\")."
  value       = aws_s3_bucket.state.id
}

output "lock_table" {
  description = "Name of the lock table (backend \"dynamodb_table\")."
  value       = aws_dynamodb_table.locks.name
}

output "state_kms_key_arn" {
  description = "KMS key of the state (backend \"kms_key_id\")."
  value       = module.kms.arn
}

output "backend_config" {
  description = "Content for infra/envs/<env>/backend.hcl."
  value       = <<-EOT
    bucket         = "${aws_s3_bucket.state.id}"
    region         = "${var.region}"
    dynamodb_table = "${aws_dynamodb_table.locks.name}"
    kms_key_id     = "${module.kms.arn}"
  EOT
}

output "repository_url" {
  description = "ECR repository of the bot's images (GitHub variable ECR_REPOSITORY)."
  value       = module.build_repository.repository_url
}

output "repository_arn" {
  description = "ARN of the ECR repository."
  value       = module.build_repository.repository_arn
}

output "repository_kms_key_arn" {
  description = "KMS key of the ECR repository."
  value       = module.build_repository.kms_key_arn
}

output "publish_role_arn" {
  description = "GitHub variable AWS_PUBLISH_ROLE_ARN."
  value       = module.github_oidc.publish_role_arn
}

output "deploy_role_arns" {
  description = "Per environment: GitHub environment variable AWS_DEPLOY_ROLE_ARN."
  value       = module.github_oidc.deploy_role_arns
}
