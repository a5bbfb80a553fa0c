# Alarms about opsbot itself reach on-call without going through opsbot: they publish to
# their own topic, which only PagerDuty's CloudWatch integration is subscribed to. The
# bot's queue is never subscribed here, so a dead, stuck or cut-off bot still pages.
locals {
  # Whether a URL was given is not secret; the URL (it holds the integration key) is.
  pagerduty_endpoint_set = nonsensitive(var.pagerduty_fallback_endpoint == null ? false : var.pagerduty_fallback_endpoint != "")
}

resource "aws_sns_topic" "self_alarms" {
  name              = "${var.name}-self-alarms"
  kms_master_key_id = module.kms.arn

  lifecycle {
    precondition {
      condition     = local.pagerduty_endpoint_set || !var.pagerduty_endpoint_required
      error_message = "The bot's own alarms page through PagerDuty's CloudWatch integration: set pagerduty_fallback_endpoint (TF_VAR_pagerduty_fallback_endpoint, the deploy workflow's PAGERDUTY_FALLBACK_ENDPOINT secret)."
    }
  }
}

resource "aws_sns_topic_policy" "self_alarms" {
  arn = aws_sns_topic.self_alarms.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "CloudWatchAlarmsOfThisAccountPublish"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.self_alarms.arn
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
          ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:cloudwatch:${data.aws_region.current.name}:${local.account_id}:alarm:${var.name}-*" }
        }
      },
      {
        Sid       = "AccountManagesTopic"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action = [
          "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:Subscribe",
          "sns:ListSubscriptionsByTopic", "sns:Publish", "sns:DeleteTopic",
          "sns:TagResource", "sns:UntagResource",
        ]
        Resource = aws_sns_topic.self_alarms.arn
      },
      {
        Sid       = "TLSOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.self_alarms.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}

# PagerDuty's Amazon CloudWatch integration confirms the subscription itself, and
# resolves its incident when the alarm's OK arrives.
resource "aws_sns_topic_subscription" "self_alarms_pagerduty" {
  count = local.pagerduty_endpoint_set ? 1 : 0

  topic_arn              = aws_sns_topic.self_alarms.arn
  protocol               = "https"
  endpoint               = var.pagerduty_fallback_endpoint
  endpoint_auto_confirms = true
}
