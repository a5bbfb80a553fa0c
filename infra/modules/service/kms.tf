data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
}

# The service's own key: its log groups, its secret and its config parameter.
module "kms" {
  source = "../kms-key"

  description            = "${var.name} service logs, secrets and config"
  alias                  = "${var.name}-service"
  log_group_name_pattern = "*${var.name}*"
}

# The key was created here before modules/kms-key existed: move it, never replace it.
moved {
  from = aws_kms_key.service
  to   = module.kms.aws_kms_key.this
}

moved {
  from = aws_kms_alias.service
  to   = module.kms.aws_kms_alias.this
}
