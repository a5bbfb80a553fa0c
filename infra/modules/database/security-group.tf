resource "aws_security_group" "database" {
  name        = "${var.name}-database"
  description = "Aurora PostgreSQL of ${var.name}: reachable from its clients only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "clients" {
  count = length(var.client_security_group_ids)

  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from a client (the bot's tasks, the role-manager Lambda)"
  referenced_security_group_id = var.client_security_group_ids[count.index]
  ip_protocol                  = "tcp"
  from_port                    = var.port
  to_port                      = var.port
}
