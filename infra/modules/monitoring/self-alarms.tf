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
#
# A page that says "opsbot is down" must not vanish because PagerDuty's endpoint failed
# for a while. SNS's default for HTTPS is 3 retries 20 s apart, then the message is
# dropped; here it retries for about 40 minutes (no more than 2 minutes apart once
# PagerDuty is back), and what still fails, or what PagerDuty refuses outright (a 4xx is
# not retried), is dead-lettered to an encrypted queue instead of discarded.
locals {
  # SNS caps an HTTPS retry policy at 3600 s in total, a hard limit: numRetries *
  # maxDelayTarget stays within it whatever the backoff curve (the module's test says so).
  self_alarms_retry_policy = {
    numRetries         = 30
    numNoDelayRetries  = 1
    numMinDelayRetries = 2
    minDelayTarget     = 5
    maxDelayTarget     = 120
    numMaxDelayRetries = 15
    backoffFunction    = "exponential"
  }
}

resource "aws_sns_topic_subscription" "self_alarms_pagerduty" {
  count = local.pagerduty_endpoint_set ? 1 : 0

  topic_arn              = aws_sns_topic.self_alarms.arn
  protocol               = "https"
  endpoint               = var.pagerduty_fallback_endpoint
  endpoint_auto_confirms = true

  delivery_policy = jsonencode({ healthyRetryPolicy = local.self_alarms_retry_policy })
  redrive_policy  = jsonencode({ deadLetterTargetArn = aws_sqs_queue.self_alarms_dlq.arn })

  # SNS checks that it may send to the dead-letter queue when the redrive policy is set.
  depends_on = [aws_sqs_queue_policy.self_alarms_dlq]
}

# The pages SNS could not deliver to PagerDuty: kept 14 days (the maximum) to read and
# to replay by hand (docs/infrastructure.md). Same key as the topic: SNS may use it.
resource "aws_sqs_queue" "self_alarms_dlq" {
  name                      = "${var.name}-self-alarms-dlq"
  kms_master_key_id         = module.kms.arn
  message_retention_seconds = 1209600
}

# Only the self-alarms topic may write it.
resource "aws_sqs_queue_policy" "self_alarms_dlq" {
  queue_url = aws_sqs_queue.self_alarms_dlq.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "SelfAlarmsTopicDeadLetters"
        Effect    = "Allow"
        Principal = { Service = "sns.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.self_alarms_dlq.arn
        Condition = { ArnEquals = { "aws:SourceArn" = aws_sns_topic.self_alarms.arn } }
      },
      {
        Sid       = "TLSOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:*"
        Resource  = aws_sqs_queue.self_alarms_dlq.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}

# A page is in the dead-letter queue: PagerDuty's CloudWatch integration failed or
# refused it, so this alarm must not rely on that road alone. It notifies both topics:
# - the self-alarms topic: when PagerDuty comes back within the retry window of this
#   new message, the page arrives there;
# - the alarms topic, i.e. through the bot: Slack, and PagerDuty if the config's route
#   for it pages (Events API v2, a different integration from the failing one). The
#   bot's queue keeps it for days if the bot is down too.
# Only both roads failing at once loses it. No e-mail: an address is not committed
# configuration, its subscription waits for a human to confirm it, and nobody is paged.
resource "aws_cloudwatch_metric_alarm" "self_alarms_undelivered" {
  alarm_name          = "${var.name}-self-alarms-undelivered"
  alarm_description   = "Alarms on opsbot itself could not be delivered to PagerDuty and wait in ${aws_sqs_queue.self_alarms_dlq.name}: read them (the page that was missed), check the PagerDuty CloudWatch integration, then delete them."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.self_alarms_dlq.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.self_alarms.arn, aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.self_alarms.arn, aws_sns_topic.alarms.arn]
}

# SNS could not even dead-letter a failed page (the queue's policy or key refused it):
# that page is lost. Same two roads.
resource "aws_cloudwatch_metric_alarm" "self_alarms_lost" {
  alarm_name          = "${var.name}-self-alarms-lost"
  alarm_description   = "SNS failed to deliver an alarm on opsbot itself to PagerDuty and failed to dead-letter it to ${aws_sqs_queue.self_alarms_dlq.name}: a page was lost. Check that queue's policy and KMS key, and the CloudWatch alarm history for what fired."
  namespace           = "AWS/SNS"
  metric_name         = "NumberOfNotificationsFailedToRedriveToDlq"
  dimensions          = { TopicName = aws_sns_topic.self_alarms.name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.self_alarms.arn, aws_sns_topic.alarms.arn]
}
