output "topic_arn" {
  description = "ARN of the alarms SNS topic: use it as alarm_actions/ok_actions of every alarm that should reach on-call."
  value       = aws_sns_topic.alarms.arn
}

output "queue_arn" {
  description = "ARN of the alarms queue the bot consumes."
  value       = aws_sqs_queue.alarms.arn
}

output "queue_raw_message_delivery" {
  description = "Whether the queue receives bare alarm JSON (the bot's OPSBOT_ALARM_QUEUE_RAW_DELIVERY)."
  value       = aws_sns_topic_subscription.alarms_queue.raw_message_delivery
}

output "queue_url" {
  description = "URL of the alarms queue (the bot's OPSBOT_ALARM_QUEUE_URL)."
  value       = aws_sqs_queue.alarms.id
}

output "dead_letter_queue_arn" {
  description = "ARN of the alarms dead-letter queue."
  value       = aws_sqs_queue.alarms_dlq.arn
}

output "kms_key_arn" {
  description = "KMS key of the topic and queues (the bot needs kms:Decrypt on it to read the queue)."
  value       = module.kms.arn
}

output "self_alarm_topic_arn" {
  description = "Topic of the alarms on opsbot itself: subscribed to PagerDuty directly, never to the bot."
  value       = aws_sns_topic.self_alarms.arn
}

output "self_alarm_dead_letter_queue_url" {
  description = "Queue of the alarms on opsbot itself that SNS could not deliver to PagerDuty (read them: each is a missed page)."
  value       = aws_sqs_queue.self_alarms_dlq.id
}
