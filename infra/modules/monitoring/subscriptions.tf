# Optional: the bot's /sns HTTPS endpoint. The bot confirms the subscription itself
# (GET of SubscribeURL after verifying the signature). Raw delivery must stay off:
# it would strip the signed envelope the bot verifies.
resource "aws_sns_topic_subscription" "bot_https" {
  count = var.bot_https_endpoint == null ? 0 : 1

  topic_arn              = aws_sns_topic.alarms.arn
  protocol               = "https"
  endpoint               = var.bot_https_endpoint
  raw_message_delivery   = false
  endpoint_auto_confirms = true

  # Retry harder than SNS's default 3 tries before giving up on a deploying bot.
  delivery_policy = jsonencode({
    healthyRetryPolicy = {
      numRetries         = 10
      numNoDelayRetries  = 0
      minDelayTarget     = 5
      maxDelayTarget     = 60
      numMinDelayRetries = 2
      numMaxDelayRetries = 3
      backoffFunction    = "exponential"
    }
  })
}

# Optional: every alarm of the topic also pages PagerDuty directly (expect double pages
# while the bot is healthy). The bot's own alarms always do, through self-alarms.tf.
resource "aws_sns_topic_subscription" "pagerduty_fallback" {
  count = local.pagerduty_endpoint_set && var.pagerduty_all_alarms ? 1 : 0

  topic_arn              = aws_sns_topic.alarms.arn
  protocol               = "https"
  endpoint               = var.pagerduty_fallback_endpoint
  endpoint_auto_confirms = true
}
