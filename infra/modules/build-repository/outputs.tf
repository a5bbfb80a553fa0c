output "repository_name" {
  description = "Name of the ECR repository."
  value       = aws_ecr_repository.main.name
}

output "repository_arn" {
  description = "ARN of the ECR repository."
  value       = aws_ecr_repository.main.arn
}

output "repository_url" {
  description = "URL to push to and pull from (<account>.dkr.ecr.<region>.amazonaws.com/<name>)."
  value       = aws_ecr_repository.main.repository_url
}

output "kms_key_arn" {
  description = "KMS key encrypting the images."
  value       = module.kms.arn
}
