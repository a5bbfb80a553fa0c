# The bot's own alarms. They notify the self-alarms topic, which PagerDuty's CloudWatch
# integration is subscribed to and the bot is not: when the bot is broken, these still
# page. Their names start with var.name (the topic's policy admits only those).
locals {
  alarm_actions = [var.self_alarm_topic_arn]

  alb_dimensions = { LoadBalancer = aws_lb.main.arn_suffix }
  tg_dimensions  = { LoadBalancer = aws_lb.main.arn_suffix, TargetGroup = aws_lb_target_group.service.arn_suffix }
  ecs_dimensions = { ClusterName = aws_ecs_cluster.main.name, ServiceName = aws_ecs_service.service.name }
}

resource "aws_cloudwatch_metric_alarm" "alb_5xx" {
  alarm_name          = "${var.name}-alb-5xx"
  alarm_description   = "The load balancer answered 5xx (no healthy target, timeouts): Slack, SNS or PagerDuty requests are failing."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HTTPCode_ELB_5XX_Count"
  dimensions          = local.alb_dimensions
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = var.alarm_5xx_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "target_5xx" {
  alarm_name          = "${var.name}-target-5xx"
  alarm_description   = "The bot answered 5xx."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HTTPCode_Target_5XX_Count"
  dimensions          = local.tg_dimensions
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = var.alarm_5xx_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "target_p99_latency" {
  alarm_name          = "${var.name}-p99-latency"
  alarm_description   = "p99 response time above ${var.alarm_p99_latency_seconds}s: Slack gives 3 s to acknowledge."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  dimensions          = local.tg_dimensions
  extended_statistic  = "p99"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = var.alarm_p99_latency_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "unhealthy_hosts" {
  alarm_name          = "${var.name}-unhealthy-hosts"
  alarm_description   = "A bot task fails its /healthz check."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  dimensions          = local.tg_dimensions
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "no_healthy_hosts" {
  alarm_name          = "${var.name}-no-healthy-hosts"
  alarm_description   = "No bot task is healthy: alarms are not reaching Slack or PagerDuty through the bot."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HealthyHostCount"
  dimensions          = local.tg_dimensions
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching" # no data means no targets at all
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "cpu" {
  alarm_name          = "${var.name}-cpu"
  alarm_description   = "The bot's tasks run hot even after scaling out."
  namespace           = "AWS/ECS"
  metric_name         = "CPUUtilization"
  dimensions          = local.ecs_dimensions
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 3
  threshold           = var.alarm_cpu_percent
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "memory" {
  alarm_name          = "${var.name}-memory"
  alarm_description   = "The bot's tasks are close to their memory limit (an OOM kill restarts them)."
  namespace           = "AWS/ECS"
  metric_name         = "MemoryUtilization"
  dimensions          = local.ecs_dimensions
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  threshold           = var.alarm_memory_percent
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# --- from the bot's own numbers (EMF lines in its log stream, every emf_interval_s) ----

# The dead-man's switch: every task writes opsbot_heartbeat = 1 each interval. No
# datapoint at all (no task alive, or none able to log) is what this alarm exists for,
# so missing data counts as breaching.
resource "aws_cloudwatch_metric_alarm" "heartbeat_missing" {
  alarm_name          = "${var.name}-heartbeat-missing"
  alarm_description   = "No opsbot task has reported a heartbeat for ${var.alarm_heartbeat_missing_minutes} minutes: the bot is down or cannot log. Alarms are not reaching Slack or PagerDuty through it."
  namespace           = var.emf_namespace
  metric_name         = "opsbot_heartbeat"
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = var.alarm_heartbeat_missing_minutes
  datapoints_to_alarm = var.alarm_heartbeat_missing_minutes
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# A page (PagerDuty event) has waited in the outbox too long: PagerDuty is refusing or
# unreachable, or the worker is stuck. Missing data is the heartbeat alarm's business.
resource "aws_cloudwatch_metric_alarm" "page_waiting" {
  alarm_name          = "${var.name}-page-waiting"
  alarm_description   = "The oldest PagerDuty event in the outbox has waited over ${var.alarm_page_waiting_seconds}s: on-call is being paged late or not at all."
  namespace           = var.emf_namespace
  metric_name         = "opsbot_outbox_oldest_pending_seconds"
  dimensions          = { target = "pagerduty" }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  threshold           = var.alarm_page_waiting_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# A delivery was given up on (marked dead): a Slack message or a page will never be sent
# unless someone retries it. No OK action: the page stays open until a person has
# looked, even though the next minute's count is 0 again.
resource "aws_cloudwatch_metric_alarm" "deliveries_dead" {
  alarm_name          = "${var.name}-deliveries-dead"
  alarm_description   = "opsbot gave up on at least one delivery (Slack post or PagerDuty event): see `opsbot outbox status`, fix the cause, `opsbot outbox retry`."
  namespace           = var.emf_namespace
  metric_name         = "opsbot_deliveries_dead"
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
}

# Scheduled jobs (reminders, escalations, maintenance window ends, handoffs) run on the
# leader, which takes each out of the store when it starts it: one still stored long
# after its time means no task is running them (no leader, or a stuck one).
resource "aws_cloudwatch_metric_alarm" "jobs_late" {
  alarm_name          = "${var.name}-jobs-late"
  alarm_description   = "A scheduled job (reminder, escalation, maintenance window end, handoff) has been due for over ${var.alarm_jobs_late_seconds}s: no opsbot task is running scheduled jobs. See the tasks' logs for 'scheduled jobs are late' and `opsbot status` for the leader."
  namespace           = var.emf_namespace
  metric_name         = "opsbot_scheduled_jobs_overdue_seconds"
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  threshold           = var.alarm_jobs_late_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# A scheduled job failed its last retry and was given up: it runs again only if its domain
# puts it back at the next start. No OK action, as for dead deliveries.
resource "aws_cloudwatch_metric_alarm" "jobs_given_up" {
  alarm_name          = "${var.name}-jobs-given-up"
  alarm_description   = "opsbot gave up a scheduled job after its last retry (a reminder, an escalation, a window end may not happen): see the ERROR line 'given up' in the logs for the job and its ids."
  namespace           = var.emf_namespace
  metric_name         = "opsbot_scheduled_jobs_given_up"
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
}

# Slack refuses the bot's token (revoked, app uninstalled, rotated without updating the
# secret): every task reports 0. Two minutes, so one failed check does not page.
resource "aws_cloudwatch_metric_alarm" "slack_auth_lost" {
  alarm_name          = "${var.name}-slack-auth-lost"
  alarm_description   = "Slack refuses opsbot's bot token: nothing reaches Slack and commands fail. Check the app's installation and SLACK_BOT_TOKEN in the app secret."
  namespace           = var.emf_namespace
  metric_name         = "opsbot_slack_auth_ok"
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Socket Mode only (SLACK_APP_TOKEN in the secret): no task has its websocket to Slack open
# for 3 minutes, so no command, click or event reaches opsbot while alarms still page. Tasks
# in HTTP mode write no such figure (missing: not breaching); Slack's routine reconnects take
# seconds, and one task connected is enough (Slack sends each envelope to an open socket).
resource "aws_cloudwatch_metric_alarm" "slack_socket_down" {
  alarm_name          = "${var.name}-slack-socket-down"
  alarm_description   = "No opsbot task has its Socket Mode connection to Slack open: commands, clicks and events do not reach opsbot. See 'Slack Socket Mode' lines in the logs (apps.connections.open failures, SLACK_APP_TOKEN revoked)."
  namespace           = var.emf_namespace
  metric_name         = "opsbot_slack_socket_connected"
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# A notification SNS delivered over HTTPS was answered 200 and recorded, then could not be
# applied: SNS sends it no more, so its alarm may never have paged. No OK action, as for
# dead deliveries: a person looks at each one.
resource "aws_cloudwatch_metric_alarm" "alarm_not_applied" {
  alarm_name          = "${var.name}-alarm-not-applied"
  alarm_description   = "opsbot took an alarm notification and could not apply it: that alarm may not have paged. See the ERROR line 'recorded notification N cannot be applied' and the row of received_messages it names."
  namespace           = var.emf_namespace
  metric_name         = "opsbot_intake_apply_failed"
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
}

# A verified UnsubscribeConfirmation reached POST /sns: that topic's alarms no longer arrive
# over HTTPS, and nothing else would say so until an alarm fails to page.
resource "aws_cloudwatch_metric_alarm" "sns_unsubscribed" {
  alarm_name          = "${var.name}-sns-unsubscribed"
  alarm_description   = "An alarms topic unsubscribed opsbot's HTTPS endpoint: its alarms no longer reach opsbot. See the ERROR line 'unsubscribed from' for the topic, and subscribe again."
  namespace           = var.emf_namespace
  metric_name         = "opsbot_sns_unsubscribed"
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
}

# --- from ECS (Container Insights, enabled on the cluster in cluster.tf) ----------------

# Fewer tasks running than the service wants, for 5 minutes: tasks crash at start
# (config, secrets, database), or capacity is missing. A deployment's extra tasks only
# push running above desired, so they never trip this.
resource "aws_cloudwatch_metric_alarm" "tasks_below_desired" {
  alarm_name          = "${var.name}-tasks-below-desired"
  alarm_description   = "Fewer opsbot tasks run than desired for 5 minutes: tasks fail to start or keep dying. See the service's events and stopped tasks."
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "missing_tasks"
    expression  = "desired - running"
    label       = "Desired tasks not running"
    return_data = true
  }

  metric_query {
    id = "desired"
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "DesiredTaskCount"
      dimensions  = local.ecs_dimensions
      stat        = "Maximum"
      period      = 60
    }
  }

  metric_query {
    id = "running"
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "RunningTaskCount"
      dimensions  = local.ecs_dimensions
      stat        = "Minimum"
      period      = 60
    }
  }
}
