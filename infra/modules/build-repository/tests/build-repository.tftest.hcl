mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/ecr" }
  }
}

variables {
  name = "opsbot"
}

run "images_are_immutable_scanned_and_encrypted" {
  command = apply

  assert {
    condition     = aws_ecr_repository.main.image_tag_mutability == "IMMUTABLE"
    error_message = "Tags must be immutable: a git SHA always names the same image."
  }

  assert {
    condition     = aws_ecr_repository.main.image_scanning_configuration[0].scan_on_push
    error_message = "Images must be scanned on push."
  }

  assert {
    condition     = aws_ecr_repository.main.encryption_configuration[0].encryption_type == "KMS"
    error_message = "Images must be encrypted with the repository's KMS key."
  }

  assert {
    condition     = [for r in jsondecode(aws_ecr_lifecycle_policy.main.policy).rules : r.selection.tagStatus] == ["untagged", "any"]
    error_message = "The lifecycle policy expires untagged images and keeps the newest tagged ones."
  }
}
