# Ubuntu 24.04 LTS (glibc 2.39): the binaries uploaded from ../target/release
# must be built against glibc 2.39 or older (README.md).
data "aws_ami" "ubuntu" {
  most_recent = true
  owners      = ["099720109477"] # Canonical

  filter {
    name   = "name"
    values = ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

# Every node of the lab, by name (module.plan.nodes: the server, the
# monitoring node and the agents). One resource, so all nodes share one
# hardening (IMDSv2 only, encrypted disks) and one boot order; what differs
# per node comes from the plan, where terraform test checks it.
locals {
  # Security groups are named per role, agents in the plural.
  security_group = { server = "server", monitoring = "monitoring", agent = "agents" }
}

resource "aws_instance" "node" {
  for_each = module.plan.nodes

  ami                         = data.aws_ami.ubuntu.id
  instance_type               = each.value.instance_type
  subnet_id                   = aws_subnet.lab.id
  private_ip                  = each.value.ip
  secondary_private_ips       = each.value.secondary_ips
  associate_public_ip_address = true
  vpc_security_group_ids      = [aws_security_group.lab[local.security_group[each.value.role]].id]
  iam_instance_profile        = aws_iam_instance_profile.node[each.value.role].name
  key_name                    = var.key_name

  # gzip: the monitoring node's document is close to EC2's 16 KB limit;
  # cloud-init unpacks it.
  user_data_base64            = base64gzip(each.value.user_data)
  user_data_replace_on_change = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = each.value.disk_gb
    encrypted   = true
  }

  tags = {
    Name = each.key
    Role = each.value.role
    Lab  = var.lab_name
  }

  # Everything an instance needs before it boots: its files in the bucket,
  # its permissions, its secrets, its routes and its firewall rules.
  depends_on = [
    aws_s3_object.artifact,
    aws_iam_role_policy.node,
    aws_ssm_parameter.agent_token,
    aws_ssm_parameter.grafana_admin_password,
    aws_route_table_association.lab,
    aws_vpc_endpoint.s3,
    aws_vpc_security_group_ingress_rule.lab,
    aws_vpc_security_group_egress_rule.all,
  ]

  lifecycle {
    # A newer Ubuntu image must not replace a lab in the middle of its runs.
    ignore_changes = [ami]
  }
}
