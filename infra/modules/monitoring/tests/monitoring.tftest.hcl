# The alarm intake: alarms reach the topic, the topic reaches the bot's queue, failed
# messages reach the dead-letter queue, and nothing but the topic may write the queue.
# The alarms on the bot itself take another road: their own topic, PagerDuty only.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/alarms", key_id = "alarms" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:eu-west-1:123456789012:opsbot-test-alarms" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:eu-west-1:123456789012:opsbot-test-queue", id = "https://sqs.eu-west-1.amazonaws.com/123456789012/opsbot-test-queue", name = "opsbot-test-queue" }
  }
}

# Distinct ARNs for the two topics, so "this topic and not that one" means something.
override_resource {
  target = aws_sns_topic.self_alarms
  values = { arn = "arn:aws:sns:eu-west-1:123456789012:opsbot-test-self-alarms" }
}

# And for the self-alarms dead-letter queue, so "that queue" means that queue.
override_resource {
  target = aws_sqs_queue.self_alarms_dlq
  values = {
    arn  = "arn:aws:sqs:eu-west-1:123456789012:opsbot-test-self-alarms-dlq"
    id   = "https://sqs.eu-west-1.amazonaws.com/123456789012/opsbot-test-self-alarms-dlq"
    name = "opsbot-test-self-alarms-dlq"
  }
}

variables {
  name                        = "opsbot-test"
  pagerduty_fallback_endpoint = "https://events.pagerduty.com/integration/0123456789abcdef/enqueue"
}

run "queue_is_subscribed_with_a_dead_letter_queue" {
  command = apply

  assert {
    condition     = aws_sns_topic_subscription.alarms_queue.topic_arn == aws_sns_topic.alarms.arn && aws_sns_topic_subscription.alarms_queue.protocol == "sqs" && aws_sns_topic_subscription.alarms_queue.endpoint == aws_sqs_queue.alarms.arn
    error_message = "The alarms queue must be subscribed to the alarms topic."
  }

  assert {
    condition     = jsondecode(aws_sqs_queue.alarms.redrive_policy).deadLetterTargetArn == aws_sqs_queue.alarms_dlq.arn && jsondecode(aws_sqs_queue.alarms.redrive_policy).maxReceiveCount == 5
    error_message = "The alarms queue must dead-letter into its DLQ after 5 receives."
  }

  assert {
    condition     = jsondecode(aws_sqs_queue_redrive_allow_policy.alarms_dlq.redrive_allow_policy).sourceQueueArns == [aws_sqs_queue.alarms.arn]
    error_message = "Only the alarms queue may use the DLQ."
  }

  assert {
    condition = one([
      for s in jsondecode(aws_sqs_queue_policy.alarms.policy).Statement : s.Condition.ArnEquals["aws:SourceArn"]
      if s.Effect == "Allow" && s.Action == "sqs:SendMessage"
    ]) == aws_sns_topic.alarms.arn
    error_message = "Only the alarms topic may send to the queue."
  }

  assert {
    condition     = !aws_sns_topic_subscription.alarms_queue.raw_message_delivery
    error_message = "The SNS envelope (MessageId, TopicArn) reaches the bot by default."
  }

  assert {
    condition     = aws_sns_topic.alarms.signature_version == 2
    error_message = "The alarms topic signs with SHA256 (SignatureVersion 2): the bot refuses version 1 by default."
  }

  assert {
    condition     = length(aws_sns_topic_subscription.bot_https) == 0 && length(aws_sns_topic_subscription.pagerduty_fallback) == 0
    error_message = "HTTPS subscriptions are opt-in."
  }
}

run "topic_and_queues_are_encrypted_and_usable_by_cloudwatch" {
  command = apply

  assert {
    condition     = aws_sns_topic.alarms.kms_master_key_id == module.kms.arn && aws_sqs_queue.alarms.kms_master_key_id == module.kms.arn && aws_sqs_queue.alarms_dlq.kms_master_key_id == module.kms.arn
    error_message = "Topic and queues must be encrypted with the alarms key."
  }

  assert {
    condition = toset(one([
      for s in jsondecode(module.kms.policy).Statement : s.Principal.Service if s.Sid == "ServicesEncrypt"
    ])) == toset(["cloudwatch.amazonaws.com", "sns.amazonaws.com"])
    error_message = "CloudWatch and SNS must be able to use the key, or encrypted alarms are dropped."
  }

  assert {
    condition = one([
      for s in jsondecode(aws_sns_topic_policy.alarms.policy).Statement : s.Principal.Service if s.Sid == "CloudWatchAlarmsOfThisAccountPublish"
    ]) == "cloudwatch.amazonaws.com"
    error_message = "CloudWatch alarms of the account must be allowed to publish."
  }
}

# A message on the alarms topic or in its queue is taken for an alarm (an OK resolves the
# incident), so the only writers are CloudWatch's alarms and the topic: no IAM principal
# of the account, whatever its own policy allows.
run "only_cloudwatch_publishes_and_only_the_topic_sends" {
  command = apply

  assert {
    condition = [
      for s in jsondecode(aws_sns_topic_policy.alarms.policy).Statement : s.Principal
      if s.Effect == "Allow" && contains(flatten([s.Action]), "sns:Publish")
    ] == [{ Service = "cloudwatch.amazonaws.com" }]
    error_message = "Only CloudWatch may be allowed sns:Publish on the alarms topic (not the account root)."
  }

  assert {
    condition = anytrue([
      for s in jsondecode(aws_sns_topic_policy.alarms.policy).Statement :
      s.Effect == "Deny" && s.Principal == "*" && s.Action == "sns:Publish" && s.Resource == aws_sns_topic.alarms.arn
      && try(s.Condition == { StringNotEquals = { "aws:SourceAccount" = "123456789012" } }, false)
    ])
    error_message = "The alarms topic must deny sns:Publish to every request not made by a service for this account (an IAM principal's own policy cannot open it)."
  }

  assert {
    condition = anytrue([
      for s in jsondecode(aws_sns_topic_policy.self_alarms.policy).Statement :
      s.Effect == "Allow" && try(s.Principal.AWS, "") == "arn:aws:iam::123456789012:root" && contains(flatten([s.Action]), "sns:Publish")
    ])
    error_message = "The account may still publish to the self-alarms topic, to replay a dead-lettered page."
  }

  assert {
    condition = anytrue([
      for s in jsondecode(aws_sqs_queue_policy.alarms.policy).Statement :
      s.Effect == "Deny" && s.Principal == "*" && s.Action == "sqs:SendMessage" && s.Resource == aws_sqs_queue.alarms.arn
      && try(s.Condition == { ArnNotEquals = { "aws:SourceArn" = aws_sns_topic.alarms.arn } }, false)
    ])
    error_message = "The alarms queue must deny sqs:SendMessage to anything but the alarms topic."
  }
}

run "a_redriver_may_send_to_the_queue" {
  command = apply

  variables {
    queue_redrive_principal_arns = ["arn:aws:iam::123456789012:role/opsbot-operator"]
  }

  assert {
    condition = one([
      for s in jsondecode(aws_sqs_queue_policy.alarms.policy).Statement : s.Condition
      if s.Effect == "Deny" && s.Action == "sqs:SendMessage"
      ]) == {
      ArnNotEquals = { "aws:SourceArn" = aws_sns_topic.alarms.arn }
      ArnNotLike   = { "aws:PrincipalArn" = ["arn:aws:iam::123456789012:role/opsbot-operator"] }
    }
    error_message = "The roles of queue_redrive_principal_arns, and no one else, are let past the queue's Deny."
  }
}

run "a_redriver_is_an_iam_principal" {
  command = plan

  variables {
    queue_redrive_principal_arns = ["*"]
  }

  expect_failures = [var.queue_redrive_principal_arns]
}

run "intake_alarms_page_directly_not_through_the_bot" {
  command = apply

  assert {
    condition = alltrue([
      for a in [aws_cloudwatch_metric_alarm.queue_oldest_message, aws_cloudwatch_metric_alarm.dead_letters] :
      a.alarm_actions == toset([aws_sns_topic.self_alarms.arn]) && a.ok_actions == toset([aws_sns_topic.self_alarms.arn])
    ])
    error_message = "The intake's alarms must page through the self-alarms topic."
  }

  assert {
    condition     = !contains(flatten([aws_cloudwatch_metric_alarm.queue_oldest_message.alarm_actions, aws_cloudwatch_metric_alarm.dead_letters.alarm_actions]), aws_sns_topic.alarms.arn)
    error_message = "An alarm about the intake must not go into the intake."
  }
}

run "self_alarms_reach_pagerduty_and_only_pagerduty" {
  command = apply

  assert {
    condition     = aws_sns_topic_subscription.self_alarms_pagerduty[0].topic_arn == aws_sns_topic.self_alarms.arn && aws_sns_topic_subscription.self_alarms_pagerduty[0].protocol == "https" && aws_sns_topic_subscription.self_alarms_pagerduty[0].endpoint == var.pagerduty_fallback_endpoint
    error_message = "The self-alarms topic must be subscribed to PagerDuty's CloudWatch integration over HTTPS."
  }

  assert {
    condition     = aws_sns_topic_subscription.alarms_queue.topic_arn != aws_sns_topic.self_alarms.arn && length(aws_sns_topic_subscription.pagerduty_fallback) == 0
    error_message = "The bot's queue is never subscribed to the self-alarms topic, and PagerDuty gets the alarms topic only when asked."
  }

  assert {
    condition     = aws_sns_topic.self_alarms.kms_master_key_id == module.kms.arn
    error_message = "The self-alarms topic is encrypted with the alarms key (which CloudWatch may use)."
  }

  assert {
    condition = one([
      for s in jsondecode(aws_sns_topic_policy.self_alarms.policy).Statement : s.Condition.ArnLike["aws:SourceArn"] if s.Sid == "CloudWatchAlarmsOfThisAccountPublish"
    ]) == "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:opsbot-test-*"
    error_message = "Only this environment's alarms may publish to its self-alarms topic."
  }
}

# A page about opsbot itself survives a PagerDuty outage: SNS retries it for longer than
# its default (3 tries, 20 s apart), then dead-letters it instead of dropping it, and a
# dead-lettered page raises an alarm that does not rely on PagerDuty's integration alone.
run "self_alarm_pages_are_retried_then_dead_lettered" {
  command = apply

  assert {
    condition     = jsondecode(aws_sns_topic_subscription.self_alarms_pagerduty[0].delivery_policy).healthyRetryPolicy.numRetries >= 20
    error_message = "The PagerDuty subscription of the self-alarms topic must retry far more than SNS's default 3 times."
  }

  assert {
    condition = (
      jsondecode(aws_sns_topic_subscription.self_alarms_pagerduty[0].delivery_policy).healthyRetryPolicy.numRetries
      * jsondecode(aws_sns_topic_subscription.self_alarms_pagerduty[0].delivery_policy).healthyRetryPolicy.maxDelayTarget
    ) <= 3600
    error_message = "SNS refuses an HTTPS retry policy longer than 3600 s in total: keep numRetries * maxDelayTarget within it."
  }

  assert {
    condition     = jsondecode(aws_sns_topic_subscription.self_alarms_pagerduty[0].redrive_policy).deadLetterTargetArn == "arn:aws:sqs:eu-west-1:123456789012:opsbot-test-self-alarms-dlq"
    error_message = "Pages SNS cannot deliver to PagerDuty must be dead-lettered to the self-alarms DLQ, not dropped."
  }

  assert {
    condition     = aws_sqs_queue.self_alarms_dlq.kms_master_key_id == module.kms.arn && aws_sqs_queue.self_alarms_dlq.message_retention_seconds == 1209600
    error_message = "The self-alarms DLQ is encrypted with the alarms key (which SNS may use) and keeps messages 14 days."
  }

  assert {
    condition = [
      for s in jsondecode(aws_sqs_queue_policy.self_alarms_dlq.policy).Statement : [s.Principal.Service, s.Action, s.Resource, s.Condition.ArnEquals["aws:SourceArn"]]
      if s.Effect == "Allow"
      ] == [
      ["sns.amazonaws.com", "sqs:SendMessage", "arn:aws:sqs:eu-west-1:123456789012:opsbot-test-self-alarms-dlq", "arn:aws:sns:eu-west-1:123456789012:opsbot-test-self-alarms"],
    ]
    error_message = "Only the self-alarms topic may send to its DLQ, and nothing else is allowed."
  }

  assert {
    condition     = one([for s in jsondecode(aws_sqs_queue_policy.self_alarms_dlq.policy).Statement : s.Condition.Bool["aws:SecureTransport"] if s.Effect == "Deny"]) == "false"
    error_message = "The self-alarms DLQ refuses requests without TLS."
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.self_alarms_undelivered.namespace == "AWS/SQS"
      && aws_cloudwatch_metric_alarm.self_alarms_undelivered.metric_name == "ApproximateNumberOfMessagesVisible"
      && aws_cloudwatch_metric_alarm.self_alarms_undelivered.dimensions["QueueName"] == "opsbot-test-self-alarms-dlq"
      && aws_cloudwatch_metric_alarm.self_alarms_undelivered.threshold == 0
      && aws_cloudwatch_metric_alarm.self_alarms_undelivered.comparison_operator == "GreaterThanThreshold"
    )
    error_message = "One message in the self-alarms DLQ must raise an alarm."
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.self_alarms_undelivered.alarm_actions == toset([aws_sns_topic.self_alarms.arn, aws_sns_topic.alarms.arn])
      && aws_cloudwatch_metric_alarm.self_alarms_lost.alarm_actions == toset([aws_sns_topic.self_alarms.arn, aws_sns_topic.alarms.arn])
    )
    error_message = "A page PagerDuty's integration failed must also be announced by another road (the alarms topic, through the bot), not only by the failing one."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.self_alarms_lost.metric_name == "NumberOfNotificationsFailedToRedriveToDlq" && aws_cloudwatch_metric_alarm.self_alarms_lost.dimensions["TopicName"] == aws_sns_topic.self_alarms.name
    error_message = "A page SNS could neither deliver nor dead-letter must raise an alarm."
  }
}

run "without_a_pagerduty_endpoint_the_plan_stops" {
  command = plan

  variables {
    pagerduty_fallback_endpoint = ""
  }

  expect_failures = [aws_sns_topic.self_alarms]
}

run "an_environment_may_opt_out_of_paging" {
  command = apply

  variables {
    pagerduty_fallback_endpoint = null
    pagerduty_endpoint_required = false
  }

  assert {
    condition     = length(aws_sns_topic_subscription.self_alarms_pagerduty) == 0 && length(aws_sns_topic_subscription.pagerduty_fallback) == 0
    error_message = "Without an endpoint nothing is subscribed."
  }
}

run "optional_subscriptions" {
  command = apply

  variables {
    bot_https_endpoint   = "https://opsbot.example.com/sns"
    pagerduty_all_alarms = true
  }

  assert {
    condition     = aws_sns_topic_subscription.bot_https[0].endpoint == "https://opsbot.example.com/sns" && !aws_sns_topic_subscription.bot_https[0].raw_message_delivery
    error_message = "The /sns subscription must keep the signed envelope (raw delivery off)."
  }

  assert {
    condition     = aws_sns_topic_subscription.pagerduty_fallback[0].topic_arn == aws_sns_topic.alarms.arn && aws_sns_topic_subscription.pagerduty_fallback[0].filter_policy == null
    error_message = "pagerduty_all_alarms subscribes PagerDuty to every alarm of the topic."
  }
}

run "a_non_https_pagerduty_endpoint_is_refused" {
  command = plan

  variables {
    pagerduty_fallback_endpoint = "http://events.pagerduty.com/integration/x/enqueue"
  }

  expect_failures = [var.pagerduty_fallback_endpoint]
}
