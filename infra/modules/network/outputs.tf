output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.main.id
}

output "vpc_cidr_block" {
  description = "IPv4 CIDR of the VPC."
  value       = aws_vpc.main.cidr_block
}

output "public_subnet_ids" {
  description = "Public subnets (load balancer, NAT gateways), one per AZ."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets (ECS tasks, Aurora, the role-manager Lambda), one per AZ."
  value       = aws_subnet.private[*].id
}

output "endpoints_security_group_id" {
  description = "Security group of the interface VPC endpoints (allows HTTPS from the VPC)."
  value       = aws_security_group.endpoints.id
}
