# Backend "ssm": one String parameter per flag, /service/<service>/feature-flag/<FLAG>,
# "true" or "false", injected into the service's task as FF_<FLAG> when a task starts.
# The bot flips a flag by writing the parameter and rolling the service.
resource "aws_ssm_parameter" "flags" {
  #checkov:skip=CKV2_AWS_34:Flag values are public booleans ("true"/"false"), not secrets; String keeps them readable in the console and by the bot without KMS grants.
  for_each = local.use_ssm ? toset(var.flags) : toset([])

  name        = "/service/${var.service_name}/feature-flag/${each.key}"
  description = "Feature flag ${each.key} of ${var.service_name} (true/false); flipped by opsbot"
  type        = "String"
  value       = "false"

  lifecycle {
    # The bot owns the value after creation.
    ignore_changes = [value]
  }
}
