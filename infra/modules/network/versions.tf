terraform {
  # 1.11: write-only arguments and ephemeral resources (passwords never reach the state),
  # and S3-native state locking in the environment roots.
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 6.0"
    }
  }
}
