# The alarms topic: every CloudWatch alarm that should reach on-call publishes here,
# the bot's own alarms included.
resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = module.kms.arn
  # SHA256 signatures: opsbot refuses SignatureVersion 1 (SHA1) unless told otherwise.
  signature_version = 2
}

resource "aws_sns_topic_policy" "alarms" {
  arn = aws_sns_topic.alarms.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "CloudWatchAlarmsOfThisAccountPublish"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
          ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:cloudwatch:${data.aws_region.current.name}:${local.account_id}:alarm:*" }
        }
      },
      {
        # Management only: a message on this topic is trusted as an alarm (an OK
        # resolves the incident), so no principal of the account publishes here.
        Sid       = "AccountManagesTopic"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action = [
          "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:Subscribe",
          "sns:ListSubscriptionsByTopic", "sns:DeleteTopic",
          "sns:TagResource", "sns:UntagResource",
        ]
        Resource = aws_sns_topic.alarms.arn
      },
      {
        # Explicit, so that no identity policy allowing sns:Publish (an administrator's,
        # a role's "sns:*") reaches this topic: aws:SourceAccount is set only when a
        # service publishes on behalf of one of its resources, and of the services only
        # CloudWatch is allowed above. The self-alarms topic keeps the account's Publish,
        # to replay a dead-lettered page by hand (self-alarms.tf).
        Sid       = "OnlyCloudWatchPublishes"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = { StringNotEquals = { "aws:SourceAccount" = local.account_id } }
      },
      {
        Sid       = "TLSOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}
