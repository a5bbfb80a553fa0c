# The zones are named, not discovered: a zone AWS adds later must not reshuffle subnets.
# The lookup still fails early if a named zone is not available in the region.
data "aws_availability_zones" "selected" {
  state = "available"

  filter {
    name   = "zone-name"
    values = var.availability_zones
  }
}

locals {
  azs      = sort(data.aws_availability_zones.selected.names)
  az_count = length(var.availability_zones)
}

resource "aws_vpc" "main" {
  cidr_block           = var.cidr_block
  enable_dns_support   = true
  enable_dns_hostnames = true # interface endpoints with private DNS need both

  tags = { Name = var.name }
}

# The default security group is attached to anything launched without one; leave it
# with no rules so nothing is reachable by accident.
resource "aws_default_security_group" "default" {
  vpc_id = aws_vpc.main.id

  tags = { Name = "${var.name}-default-deny" }
}
