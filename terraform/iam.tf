# One instance profile per role, each allowed only what its boot needs
# (module.plan.role_access): every role reads objects of the artifact
# bucket; agents and the monitoring node read the token parameter; the
# monitoring node also lists the bucket (it copies folders), reads
# Grafana's password and describes instances (Prometheus' EC2 discovery).
# The server reads no secret.

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

locals {
  roles = toset(["server", "agent", "monitoring"])
}

resource "aws_iam_role" "node" {
  for_each = local.roles

  name_prefix        = "${var.lab_name}-${each.key}-"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
}

data "aws_iam_policy_document" "node" {
  for_each = local.roles

  statement {
    sid       = "ReadArtifacts"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.artifacts.arn}/*"]
  }

  dynamic "statement" {
    for_each = module.plan.role_access[each.key].list_bucket ? [1] : []
    content {
      sid       = "ListArtifacts"
      actions   = ["s3:ListBucket"]
      resources = [aws_s3_bucket.artifacts.arn]
    }
  }

  dynamic "statement" {
    for_each = length(module.plan.role_access[each.key].secret_parameters) > 0 ? [1] : []
    content {
      sid       = "ReadSecrets"
      actions   = ["ssm:GetParameter"]
      resources = [for name in module.plan.role_access[each.key].secret_parameters : local.parameter_arns[name]]
    }
  }

  dynamic "statement" {
    for_each = module.plan.role_access[each.key].discover_instances ? [1] : []
    content {
      sid       = "DiscoverLabInstances"
      actions   = ["ec2:DescribeInstances", "ec2:DescribeAvailabilityZones"]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "node" {
  for_each = local.roles

  name   = "wslab-${each.key}"
  role   = aws_iam_role.node[each.key].id
  policy = data.aws_iam_policy_document.node[each.key].json
}

resource "aws_iam_instance_profile" "node" {
  for_each = local.roles

  name_prefix = "${var.lab_name}-${each.key}-"
  role        = aws_iam_role.node[each.key].name
}
