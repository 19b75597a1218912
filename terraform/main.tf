# The wslab cloud lab: one chat server, N load agents with K secondary
# addresses each, and a monitoring node (Prometheus, Grafana, the
# coordinator). Everything that needs no provider (addresses, sizing,
# security rules, cloud-init, the scenario) is computed in modules/plan,
# which is tested offline; this root module turns it into AWS resources.

module "plan" {
  source = "./modules/plan"

  templates_dir = "${path.module}/templates"

  lab_name                 = var.lab_name
  region                   = var.region
  vpc_cidr                 = var.vpc_cidr
  admin_cidr               = var.admin_cidr
  allow_public_websocket   = var.allow_public_websocket
  server_instance_type     = var.server_instance_type
  agent_instance_type      = var.agent_instance_type
  monitoring_instance_type = var.monitoring_instance_type
  agent_count              = var.agent_count
  addresses_per_agent      = var.addresses_per_agent
  target_connections       = var.target_connections
  scenario                 = var.scenario
  enforce_sizing           = var.enforce_sizing

  artifact_bucket                 = aws_s3_bucket.artifacts.id
  token_parameter_name            = local.token_parameter_name
  grafana_password_parameter_name = local.grafana_password_parameter_name
  artifacts_version               = local.artifacts_version
}

locals {
  token_parameter_name            = "/${var.lab_name}/agent-token"
  grafana_password_parameter_name = "/${var.lab_name}/grafana-admin-password"
}
