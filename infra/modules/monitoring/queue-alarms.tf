# Alarms on the intake itself, so a stuck or crashing consumer is noticed. They page
# through the self-alarms topic: sending them into the queue the bot is not consuming
# would tell nobody.
resource "aws_cloudwatch_metric_alarm" "queue_oldest_message" {
  alarm_name          = "${var.name}-alarm-queue-not-consumed"
  alarm_description   = "Alarms wait in ${aws_sqs_queue.alarms.name} for over ${var.queue_age_threshold_seconds}s: the bot is not consuming its queue."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = aws_sqs_queue.alarms.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.queue_age_threshold_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.self_alarms.arn]
  ok_actions          = [aws_sns_topic.self_alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  alarm_name          = "${var.name}-alarm-dead-letters"
  alarm_description   = "Alarm messages reached ${aws_sqs_queue.alarms_dlq.name}: the bot failed them ${var.queue_max_receive_count} times. Inspect and redrive."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.alarms_dlq.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.self_alarms.arn]
  ok_actions          = [aws_sns_topic.self_alarms.arn]
}
