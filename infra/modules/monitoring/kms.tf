data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
}

# One key for both topics and both queues. CloudWatch (publishing alarms) and SNS
# (delivering to the encrypted queue) must be able to use it, or alarms are dropped
# silently: that is the usual way an encrypted alarm topic breaks.
module "kms" {
  source = "../kms-key"

  description        = "${var.name} alarm topics and queues"
  alias              = "${var.name}-alarms"
  service_principals = ["cloudwatch.amazonaws.com", "sns.amazonaws.com"]
}

# The key was created here before modules/kms-key existed: move it, never replace it.
moved {
  from = aws_kms_key.alarms
  to   = module.kms.aws_kms_key.this
}

moved {
  from = aws_kms_alias.alarms
  to   = module.kms.aws_kms_alias.this
}
