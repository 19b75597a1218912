# One public subnet: every node has a public address for its packages and
# for SSH from the admin CIDR, and the security groups admit nothing else
# from outside. S3 traffic stays on AWS's network through a gateway
# endpoint (free).

data "aws_ec2_instance_type_offerings" "lab" {
  location_type = "availability-zone"

  filter {
    name   = "instance-type"
    values = local.instance_types_used
  }
}

locals {
  instance_types_used = distinct([var.server_instance_type, var.agent_instance_type, var.monitoring_instance_type])

  # Zone -> the types it offers; a zone must offer all three.
  zone_offers = {
    for i, zone in data.aws_ec2_instance_type_offerings.lab.locations :
    zone => data.aws_ec2_instance_type_offerings.lab.instance_types[i]...
  }
  zones_with_all_types = sort([
    for zone, types in local.zone_offers : zone
    if length(setsubtract(local.instance_types_used, types)) == 0
  ])
  availability_zone = var.availability_zone != null ? var.availability_zone : try(local.zones_with_all_types[0], null)
}

# New accounts often may run 32 vCPUs of standard instances or fewer; the
# default lab needs 58. Refused here, at plan time, instead of halfway
# through an apply.
data "aws_servicequotas_service_quota" "standard_vcpus" {
  count = var.check_vcpu_quota ? 1 : 0

  service_code = "ec2"
  quota_code   = "L-1216C47A" # Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances, vCPUs
}

resource "aws_vpc" "lab" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = { Name = var.lab_name }

  lifecycle {
    precondition {
      condition     = !var.check_vcpu_quota || try(data.aws_servicequotas_service_quota.standard_vcpus[0].value, 0) >= module.plan.sizing.total_vcpus
      error_message = "The lab needs ${module.plan.sizing.total_vcpus} vCPUs of on-demand standard instances, above this account's quota in ${var.region} (Service Quotas, EC2, L-1216C47A: ${try(data.aws_servicequotas_service_quota.standard_vcpus[0].value, "unknown")}). Request an increase, choose smaller types or fewer agents, or set check_vcpu_quota = false if instances of other families are meant."
    }
  }
}

resource "aws_internet_gateway" "lab" {
  vpc_id = aws_vpc.lab.id

  tags = { Name = var.lab_name }
}

resource "aws_subnet" "lab" {
  vpc_id                  = aws_vpc.lab.id
  cidr_block              = module.plan.addresses.subnet_cidr
  availability_zone       = local.availability_zone
  map_public_ip_on_launch = true

  tags = { Name = "${var.lab_name}-public" }

  lifecycle {
    precondition {
      condition     = local.availability_zone != null
      error_message = "No availability zone of ${var.region} offers all of ${join(", ", local.instance_types_used)}: choose other instance types or another region."
    }
  }
}

resource "aws_route_table" "lab" {
  vpc_id = aws_vpc.lab.id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.lab.id
  }

  tags = { Name = var.lab_name }
}

resource "aws_route_table_association" "lab" {
  subnet_id      = aws_subnet.lab.id
  route_table_id = aws_route_table.lab.id
}

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.lab.id
  service_name      = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.lab.id]

  tags = { Name = "${var.lab_name}-s3" }
}
