# One JSON secret holds the bot's third-party credentials, one key per environment
# variable (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, PAGERDUTY_API_TOKEN,
# PAGERDUTY_WEBHOOK_SECRETS, and the routing-key variables the config file names).
# Terraform creates the container only; an operator puts the value
# (docs/first-deployment.md), so no credential ever passes through Terraform state.
resource "aws_secretsmanager_secret" "app" {
  #checkov:skip=CKV2_AWS_57:Slack and PagerDuty tokens are rotated at the vendor, not by a Lambda; the runbook rotates them by hand.
  name                    = "${var.name}/app"
  description             = "opsbot credentials (JSON): ${join(", ", var.app_secret_keys)}"
  kms_key_id              = module.kms.arn
  recovery_window_in_days = 7
}

# The YAML config file (infra/envs/<env>/opsbot.yaml). Each apply that changes it writes
# a new version of this parameter; SSM keeps the last 100. A task definition pins one
# version (OPSBOT_CONFIG_VERSION, task-definition.tf) and the image's entrypoint reads
# exactly that one into OPSBOT_CONFIG, so a restart never picks up an edit and rolling
# back a revision rolls back its config with its image. Intelligent tiering moves it to
# the advanced tier only if it grows past 4 KB.
resource "aws_ssm_parameter" "config" {
  name   = "/${var.name}/config"
  type   = "SecureString"
  key_id = module.kms.arn
  tier   = "Intelligent-Tiering"
  value  = var.config_yaml

  lifecycle {
    precondition {
      condition     = trimspace(var.config_yaml) != ""
      error_message = "The bot's config is empty: write infra/envs/<environment>/opsbot.yaml (see the README's configuration section) and check it with `opsbot check-config`."
    }
  }
}
