# One page for "is opsbot itself healthy": the alarms above, the bot's own numbers, the
# tasks and the load balancer. Opened from the alarms' descriptions and the runbook.
locals {
  alarm_queue_name = element(split(":", var.alarm_queue_arn), 5)

  emf = var.emf_namespace

  self_alarm_arns = [
    aws_cloudwatch_metric_alarm.heartbeat_missing.arn,
    aws_cloudwatch_metric_alarm.page_waiting.arn,
    aws_cloudwatch_metric_alarm.deliveries_dead.arn,
    aws_cloudwatch_metric_alarm.jobs_late.arn,
    aws_cloudwatch_metric_alarm.jobs_given_up.arn,
    aws_cloudwatch_metric_alarm.slack_auth_lost.arn,
    aws_cloudwatch_metric_alarm.slack_socket_down.arn,
    aws_cloudwatch_metric_alarm.alarm_not_applied.arn,
    aws_cloudwatch_metric_alarm.sns_unsubscribed.arn,
    aws_cloudwatch_metric_alarm.tasks_below_desired.arn,
    aws_cloudwatch_metric_alarm.alb_5xx.arn,
    aws_cloudwatch_metric_alarm.target_5xx.arn,
    aws_cloudwatch_metric_alarm.no_healthy_hosts.arn,
  ]

  # Each widget: [title, metrics, stat-independent properties]. Laid out two per row.
  dashboard_widgets = [
    {
      title   = "Tasks reporting (heartbeats per minute)"
      metrics = [[local.emf, "opsbot_heartbeat", { stat = "Sum", label = "heartbeats" }]]
    },
    {
      title = "Slack: token accepted (minimum over tasks), Socket Mode open (maximum)"
      metrics = [
        [local.emf, "opsbot_slack_auth_ok", { stat = "Minimum", label = "auth ok" }],
        [local.emf, "opsbot_slack_socket_connected", { stat = "Maximum", label = "socket open (Socket Mode only)" }],
      ]
    },
    {
      title = "Oldest pending delivery (s)"
      metrics = [
        [local.emf, "opsbot_outbox_oldest_pending_seconds", "target", "pagerduty", { stat = "Maximum" }],
        [local.emf, "opsbot_outbox_oldest_pending_seconds", "target", "slack", { stat = "Maximum" }],
      ]
      annotations = { horizontal = [{ label = "page alarm", value = var.alarm_page_waiting_seconds }] }
    },
    {
      title = "Pending deliveries"
      metrics = [
        [local.emf, "opsbot_outbox_pending", "target", "pagerduty", { stat = "Maximum" }],
        [local.emf, "opsbot_outbox_pending", "target", "slack", { stat = "Maximum" }],
      ]
    },
    {
      title = "Dead deliveries, alarms not applied, alarm-to-page time"
      metrics = [
        [local.emf, "opsbot_deliveries_dead", { stat = "Sum", label = "dead deliveries" }],
        [local.emf, "opsbot_alarm_to_page_seconds", { stat = "Maximum", label = "alarm to page (s)", yAxis = "right" }],
        [local.emf, "opsbot_intake_apply_failed", { stat = "Sum", label = "alarms not applied" }],
        [local.emf, "opsbot_sns_unsubscribed", { stat = "Sum", label = "topics unsubscribed" }],
      ]
    },
    {
      title = "Scheduled jobs: oldest due (s) and given up"
      metrics = [
        [local.emf, "opsbot_scheduled_jobs_overdue_seconds", { stat = "Maximum", label = "oldest due (s)" }],
        [local.emf, "opsbot_scheduled_jobs_given_up", { stat = "Sum", label = "given up", yAxis = "right" }],
      ]
      annotations = { horizontal = [{ label = "jobs alarm", value = var.alarm_jobs_late_seconds }] }
    },
    {
      title = "Tasks: running and desired"
      metrics = [
        ["ECS/ContainerInsights", "RunningTaskCount", "ClusterName", aws_ecs_cluster.main.name, "ServiceName", aws_ecs_service.service.name, { stat = "Minimum" }],
        ["ECS/ContainerInsights", "DesiredTaskCount", "ClusterName", aws_ecs_cluster.main.name, "ServiceName", aws_ecs_service.service.name, { stat = "Maximum" }],
      ]
    },
    {
      title = "CPU and memory (%)"
      metrics = [
        ["AWS/ECS", "CPUUtilization", "ClusterName", aws_ecs_cluster.main.name, "ServiceName", aws_ecs_service.service.name, { stat = "Average" }],
        ["AWS/ECS", "MemoryUtilization", "ClusterName", aws_ecs_cluster.main.name, "ServiceName", aws_ecs_service.service.name, { stat = "Maximum" }],
      ]
    },
    {
      title = "Load balancer: requests and 5xx"
      metrics = [
        ["AWS/ApplicationELB", "RequestCount", "LoadBalancer", aws_lb.main.arn_suffix, { stat = "Sum" }],
        ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "LoadBalancer", aws_lb.main.arn_suffix, { stat = "Sum" }],
        ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "LoadBalancer", aws_lb.main.arn_suffix, "TargetGroup", aws_lb_target_group.service.arn_suffix, { stat = "Sum" }],
      ]
    },
    {
      title = "Load balancer: p99 response time (s) and healthy targets"
      metrics = [
        ["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", aws_lb.main.arn_suffix, "TargetGroup", aws_lb_target_group.service.arn_suffix, { stat = "p99" }],
        ["AWS/ApplicationELB", "HealthyHostCount", "LoadBalancer", aws_lb.main.arn_suffix, "TargetGroup", aws_lb_target_group.service.arn_suffix, { stat = "Minimum", yAxis = "right" }],
      ]
    },
    {
      title   = "Alarm queue: age of the oldest message (s)"
      metrics = [["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", local.alarm_queue_name, { stat = "Maximum" }]]
    },
  ]
}

resource "aws_cloudwatch_dashboard" "service" {
  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = concat(
      [{
        type   = "alarm"
        x      = 0
        y      = 0
        width  = 24
        height = 3
        properties = {
          title  = "${var.name}: alarms on opsbot itself (they page PagerDuty directly)"
          alarms = local.self_alarm_arns
        }
      }],
      [for i, w in local.dashboard_widgets : {
        type   = "metric"
        x      = (i % 2) * 12
        y      = 3 + floor(i / 2) * 6
        width  = 12
        height = 6
        properties = merge(
          {
            title   = w.title
            region  = local.region
            view    = "timeSeries"
            stacked = false
            period  = 60
            metrics = w.metrics
          },
          try({ annotations = w.annotations }, {}),
        )
      }],
    )
  })
}
