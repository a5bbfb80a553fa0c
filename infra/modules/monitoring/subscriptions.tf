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

# Optional fallback pager: PagerDuty's own CloudWatch integration, subscribed directly.
# It pages when the bot cannot (the bot's own alarms), so by default it only receives
# alarms whose name starts with the bot's prefix, filtered on the message body. Set the
# prefix to "" to send it every alarm (expect double pages while the bot is healthy).
resource "aws_sns_topic_subscription" "pagerduty_fallback" {
  count = var.pagerduty_fallback_endpoint == null ? 0 : 1

  topic_arn              = aws_sns_topic.alarms.arn
  protocol               = "https"
  endpoint               = var.pagerduty_fallback_endpoint
  endpoint_auto_confirms = true
  filter_policy_scope    = var.pagerduty_fallback_alarm_prefix == "" ? null : "MessageBody"
  filter_policy = var.pagerduty_fallback_alarm_prefix == "" ? null : jsonencode({
    AlarmName = [{ prefix = var.pagerduty_fallback_alarm_prefix }]
  })
}
