data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
}

# Storage, Performance Insights, the master secret and (database-login module) the
# bot's login secret.
module "kms" {
  source = "../kms-key"

  description            = "${var.name} Aurora storage and database secrets"
  alias                  = "${var.name}-database"
  log_group_name_pattern = "/aws/rds/cluster/${var.name}/*"
}

# The key was created here before modules/kms-key existed: move it, never replace it.
moved {
  from = aws_kms_key.database
  to   = module.kms.aws_kms_key.this
}

moved {
  from = aws_kms_alias.database
  to   = module.kms.aws_kms_alias.this
}
