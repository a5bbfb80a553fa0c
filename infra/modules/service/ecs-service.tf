resource "aws_ecs_service" "service" {
  name             = var.name
  cluster          = aws_ecs_cluster.main.id
  task_definition  = aws_ecs_task_definition.service.arn
  desired_count    = var.desired_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  # Unhealthy load balancer and container checks are ignored while a new task may still
  # be migrating the database: `opsbot serve` applies the migrations before it
  # listens, and bot/db/migrate.py allows a migration 10 minutes.
  health_check_grace_period_seconds  = local.startup_allowance_s
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"
  # ECS Exec (`aws ecs execute-command`): off unless the environment turns it on.
  enable_execute_command = var.enable_execute_command

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.service.arn
    container_name   = local.container_name
    container_port   = var.container_port
  }

  lifecycle {
    # After the first apply, releases are rolled by `opsbot deploy` (a new task
    # definition revision pinned to an image digest) and autoscaling owns the count;
    # Terraform must not roll them back on its next apply.
    ignore_changes = [task_definition, desired_count]
  }

  # ECS refuses a target group that no listener rule forwards to yet.
  depends_on = [aws_lb_listener_rule.public_routes]
}
