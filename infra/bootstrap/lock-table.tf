# DynamoDB state locking, kept while anyone still runs Terraform < 1.11. The roots also
# set use_lockfile = true (S3-native locking), so both locks are taken; once everyone is
# on >= 1.11, remove dynamodb_table from the roots' backend blocks, run
# `terraform init -reconfigure` in each, then delete this table (docs/infrastructure.md).
resource "aws_dynamodb_table" "locks" {
  name                        = var.lock_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "LockID"
  deletion_protection_enabled = true

  attribute {
    name = "LockID"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = module.kms.arn
  }
}
