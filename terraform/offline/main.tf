# The lab as the AWS root module would render it with its defaults, without
# AWS: used by check.sh to validate the rendered documents with the real
# tools (promtool, the coordinator, shellcheck, cloud-init). Provider-free.
#
#   terraform -chdir=terraform/offline init
#   terraform -chdir=terraform/offline apply -auto-approve
#   terraform -chdir=terraform/offline output -json rendered

terraform {
  required_version = ">= 1.6"
  backend "local" {}
}

variable "target_connections" {
  type    = number
  default = 1000000
}

variable "agent_count" {
  type    = number
  default = 10
}

module "plan" {
  source = "../modules/plan"

  templates_dir      = "${path.module}/../templates"
  region             = "us-east-1"
  admin_cidr         = "198.51.100.7/32"
  target_connections = var.target_connections
  agent_count        = var.agent_count

  artifact_bucket                 = "wslab-artifacts-offline"
  token_parameter_name            = "/wslab/agent-token"
  grafana_password_parameter_name = "/wslab/grafana-admin-password"
  artifacts_version               = "offline"
}

output "rendered" {
  description = "Every rendered document, by the file name check.sh gives it."
  value = merge(
    {
      "server.cloud-config.yaml"     = module.plan.user_data.server
      "monitoring.cloud-config.yaml" = module.plan.user_data.monitoring
      "prometheus.yml"               = module.plan.prometheus_yml
      (module.plan.scenario.file)    = module.plan.scenario.yaml
    },
    { for i, d in module.plan.user_data.agents : format("agent-%02d.cloud-config.yaml", i + 1) => d },
  )
}

output "files" {
  description = "The files the server's, the first agent's and the monitoring node's documents write, path => content."
  value = {
    server     = module.plan.user_data_files.server
    agent      = module.plan.user_data_files.agents[0]
    monitoring = module.plan.user_data_files.monitoring
  }
}

output "sizing" {
  value = module.plan.sizing
}
