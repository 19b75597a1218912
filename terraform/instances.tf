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

resource "aws_instance" "server" {
  ami                         = data.aws_ami.ubuntu.id
  instance_type               = var.server_instance_type
  subnet_id                   = aws_subnet.lab.id
  private_ip                  = module.plan.addresses.server_ip
  associate_public_ip_address = true
  vpc_security_group_ids      = [aws_security_group.lab["server"].id]
  iam_instance_profile        = aws_iam_instance_profile.node["server"].name
  key_name                    = var.key_name

  # gzip: the monitoring node's document is close to EC2's 16 KB limit;
  # cloud-init unpacks it.
  user_data_base64            = base64gzip(module.plan.user_data.server)
  user_data_replace_on_change = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = 20
    encrypted   = true
  }

  tags = {
    Name = module.plan.hostnames.server
    Role = "server"
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

resource "aws_instance" "agent" {
  count = var.agent_count

  ami                         = data.aws_ami.ubuntu.id
  instance_type               = var.agent_instance_type
  subnet_id                   = aws_subnet.lab.id
  private_ip                  = module.plan.addresses.agents[count.index].ip
  secondary_private_ips       = module.plan.addresses.agents[count.index].secondary_ips
  associate_public_ip_address = true
  vpc_security_group_ids      = [aws_security_group.lab["agents"].id]
  iam_instance_profile        = aws_iam_instance_profile.node["agent"].name
  key_name                    = var.key_name

  user_data_base64            = base64gzip(module.plan.user_data.agents[count.index])
  user_data_replace_on_change = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = 20
    encrypted   = true
  }

  tags = {
    Name = module.plan.addresses.agents[count.index].name
    Role = "agent"
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
    ignore_changes = [ami]
  }
}

resource "aws_instance" "monitoring" {
  ami                         = data.aws_ami.ubuntu.id
  instance_type               = var.monitoring_instance_type
  subnet_id                   = aws_subnet.lab.id
  private_ip                  = module.plan.addresses.monitoring_ip
  associate_public_ip_address = true
  vpc_security_group_ids      = [aws_security_group.lab["monitoring"].id]
  iam_instance_profile        = aws_iam_instance_profile.node["monitoring"].name
  key_name                    = var.key_name

  user_data_base64            = base64gzip(module.plan.user_data.monitoring)
  user_data_replace_on_change = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = 40
    encrypted   = true
  }

  tags = {
    Name = module.plan.hostnames.monitoring
    Role = "monitoring"
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
    ignore_changes = [ami]
  }
}
