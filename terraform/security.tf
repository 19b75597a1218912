# Three security groups; their ingress rules are data from modules/plan
# (tested offline: nothing open to 0.0.0.0/0 unless allow_public_websocket),
# created here one for one. Egress is open: packages, S3, SSM.

resource "aws_security_group" "lab" {
  for_each = toset(["server", "agents", "monitoring"])

  name        = "${var.lab_name}-${each.key}"
  description = "wslab ${each.key} (rules from terraform/modules/plan/security.tf)"
  vpc_id      = aws_vpc.lab.id

  tags = { Name = "${var.lab_name}-${each.key}" }
}

resource "aws_vpc_security_group_ingress_rule" "lab" {
  for_each = { for r in module.plan.ingress_rules : r.name => r }

  security_group_id            = aws_security_group.lab[each.value.security_group].id
  description                  = each.value.description
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.from_port
  to_port                      = each.value.to_port
  cidr_ipv4                    = each.value.cidr_ipv4
  referenced_security_group_id = each.value.source_security_group == null ? null : aws_security_group.lab[each.value.source_security_group].id

  tags = { Name = each.key }
}

resource "aws_vpc_security_group_egress_rule" "all" {
  for_each = aws_security_group.lab

  security_group_id = each.value.id
  description       = "Everything out: packages, S3, SSM, the load"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}
