resource "aws_security_group" "role_manager" {
  name        = "${var.name}-lambda"
  description = "Role-manager Lambda: to the database and to the VPC endpoints only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "database" {
  security_group_id            = aws_security_group.role_manager.id
  description                  = "PostgreSQL"
  referenced_security_group_id = var.db_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = var.db_port
  to_port                      = var.db_port
}

resource "aws_vpc_security_group_egress_rule" "endpoints" {
  security_group_id = aws_security_group.role_manager.id
  description       = "HTTPS to the VPC endpoints (Secrets Manager); no route leaves the VPC"
  cidr_ipv4         = var.vpc_cidr_block
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}
