# The one customer-managed key shape every module uses: rotated yearly, administered by
# the account (so IAM policies decide who uses it), plus the service grants its caller
# names. Keys hold data hostage: callers move an existing key here with `moved` blocks,
# never by destroying and creating one.
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  statements = concat(
    [{
      Sid       = "AccountAdministers"
      Effect    = "Allow"
      Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }],
    var.log_group_name_pattern == null ? [] : [{
      # CloudWatch Logs uses the key only for the log groups named here: the encryption
      # context carries the log group's ARN.
      Sid       = "CloudWatchLogsEncrypts"
      Effect    = "Allow"
      Principal = { Service = "logs.${local.region}.amazonaws.com" }
      Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
      Resource  = "*"
      Condition = {
        ArnLike = {
          "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${var.log_group_name_pattern}"
        }
      }
    }],
    length(var.service_principals) == 0 ? [] : [{
      Sid       = "ServicesEncrypt"
      Effect    = "Allow"
      Principal = { Service = var.service_principals }
      Action    = var.service_actions
      Resource  = "*"
      Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
    }],
  )
}

resource "aws_kms_key" "this" {
  description             = var.description
  enable_key_rotation     = true
  deletion_window_in_days = var.deletion_window_in_days
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = local.statements
  })
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.alias}"
  target_key_id = aws_kms_key.this.key_id
}
