# SNS -> SQS is the durable intake: SNS gives an HTTPS endpoint three tries and then
# drops the message, a queue keeps it for days while the bot is down or deploying.
resource "aws_sqs_queue" "alarms_dlq" {
  name                      = "${var.name}-alarms-dlq"
  kms_master_key_id         = module.kms.arn
  message_retention_seconds = 1209600 # 14 days, the maximum: time to find out and replay
}

resource "aws_sqs_queue" "alarms" {
  name                       = "${var.name}-alarms"
  kms_master_key_id          = module.kms.arn
  message_retention_seconds  = var.queue_retention_seconds
  visibility_timeout_seconds = var.queue_visibility_timeout_seconds
  receive_wait_time_seconds  = 20 # long polling: fewer empty receives

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.alarms_dlq.arn
    maxReceiveCount     = var.queue_max_receive_count
  })
}

# Only the alarms queue may dead-letter into the DLQ.
resource "aws_sqs_queue_redrive_allow_policy" "alarms_dlq" {
  queue_url = aws_sqs_queue.alarms_dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.alarms.arn]
  })
}

# The queue policy is the trust boundary of the SQS intake: only this topic may send.
# The Allow alone does not say so: within the account an identity policy allowing
# sqs:SendMessage suffices, and under raw delivery what arrives is taken as an alarm.
resource "aws_sqs_queue_policy" "alarms" {
  queue_url = aws_sqs_queue.alarms.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AlarmsTopicSends"
        Effect    = "Allow"
        Principal = { Service = "sns.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.alarms.arn
        Condition = { ArnEquals = { "aws:SourceArn" = aws_sns_topic.alarms.arn } }
      },
      {
        # aws:SourceArn is set only by a service acting for one of its resources. The
        # principals of queue_redrive_principal_arns are let through to redrive the
        # dead-letter queue (its move task sends as the caller).
        Sid       = "OnlyTheAlarmsTopicSends"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.alarms.arn
        Condition = merge(
          { ArnNotEquals = { "aws:SourceArn" = aws_sns_topic.alarms.arn } },
          { for k in(length(var.queue_redrive_principal_arns) > 0 ? ["ArnNotLike"] : []) : k => { "aws:PrincipalArn" = var.queue_redrive_principal_arns } },
        )
      },
      {
        Sid       = "TLSOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:*"
        Resource  = aws_sqs_queue.alarms.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}

resource "aws_sns_topic_subscription" "alarms_queue" {
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "sqs"
  endpoint  = aws_sqs_queue.alarms.arn
  # Off by default: the envelope carries MessageId (the bot's dedup key) and TopicArn,
  # and lets the SQS and HTTPS intakes share one parser.
  raw_message_delivery = var.queue_raw_message_delivery

  depends_on = [aws_sqs_queue_policy.alarms]
}
