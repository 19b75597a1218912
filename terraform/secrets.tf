# The agents' token and Grafana's admin password: generated here, kept in
# SSM Parameter Store as SecureStrings (the account's aws/ssm key), read by
# the instances at boot with their instance profile. User data and the
# repository carry only the parameter names. The values are also in the
# terraform state (as every random_password is): keep the state private.

resource "random_password" "agent_token" {
  length  = 48
  special = false
}

resource "random_password" "grafana_admin" {
  length  = 24
  special = false
}

resource "aws_ssm_parameter" "agent_token" {
  name        = local.token_parameter_name
  description = "wslab ${var.lab_name}: the token the coordinator presents to the load agents"
  type        = "SecureString"
  value       = random_password.agent_token.result
}

resource "aws_ssm_parameter" "grafana_admin_password" {
  name        = local.grafana_password_parameter_name
  description = "wslab ${var.lab_name}: Grafana's admin password"
  type        = "SecureString"
  value       = random_password.grafana_admin.result
}

locals {
  parameter_arns = {
    (local.token_parameter_name)            = aws_ssm_parameter.agent_token.arn
    (local.grafana_password_parameter_name) = aws_ssm_parameter.grafana_admin_password.arn
  }
}
