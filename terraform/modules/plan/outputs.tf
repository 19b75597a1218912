output "addresses" {
  description = "The lab's address plan: the subnet, the server, the monitoring node and every agent with its secondary addresses."
  value = {
    subnet_cidr   = local.subnet_cidr
    server_ip     = local.server_ip
    monitoring_ip = local.monitoring_ip
    agents        = local.agents
  }
}

output "sizing" {
  description = "Whether the lab holds target_connections, with every figure behind the answer; `problems` says what to change."
  value       = local.sizing
}

# Fails the plan, with the problems, when the sizing says no (unless
# enforce_sizing = false): nothing is created for a run that cannot work.
output "sizing_gate" {
  description = "true once the sizing check passed (or was switched off)."
  value       = local.sizing.ok || !var.enforce_sizing

  precondition {
    condition     = local.sizing.ok || !var.enforce_sizing
    error_message = "This lab cannot hold ${var.target_connections} connections:\n- ${join("\n- ", local.problems)}"
  }
}

output "ingress_rules" {
  description = "Every ingress rule of the lab's security groups (security_group: server, agents or monitoring; a source group or a CIDR)."
  value       = local.ingress_rules
}

output "role_access" {
  description = "What each role's instance profile must allow: the SSM parameters it reads and whether it lists the bucket or discovers instances."
  value = {
    server     = { secret_parameters = [for s in local.role_secrets.server : s.parameter], list_bucket = false, discover_instances = false }
    agent      = { secret_parameters = [for s in local.role_secrets.agent : s.parameter], list_bucket = false, discover_instances = false }
    monitoring = { secret_parameters = distinct([for s in local.role_secrets.monitoring : s.parameter]), list_bucket = true, discover_instances = true }
  }
}

output "user_data" {
  description = "The cloud-init documents: server, monitoring, and one per agent."
  value       = local.user_data
}

output "hostnames" {
  description = "Host names (and Name tags) of the server and the monitoring node; agents' are in addresses.agents[*].name."
  value       = local.hostnames
}

output "sysctls" {
  description = "The kernel settings each role gets."
  value       = local.sysctls
}

output "scenario" {
  description = "The scenario written for this lab's agents: its file name (under /opt/wslab/scenarios on the monitoring node) and its text."
  value = {
    name = local.scenario_name
    file = local.scenario_file
    yaml = local.scenario_yaml
  }
}

output "prometheus_yml" {
  description = "The monitoring node's Prometheus configuration."
  value       = local.prometheus_yml
}

output "instance_types" {
  description = "The sizing table's entries for the chosen types."
  value       = local.types
}

output "user_data_files" {
  description = "The files each cloud-init document writes (path => content), decoded back from the rendered text: what the tests read."
  value = {
    server     = { for f in yamldecode(local.user_data.server).write_files : f.path => f.content }
    monitoring = { for f in yamldecode(local.user_data.monitoring).write_files : f.path => f.content }
    agents     = [for d in local.user_data.agents : { for f in yamldecode(d).write_files : f.path => f.content }]
  }
}

output "nodes" {
  description = "Every instance of the lab by host name: role, instance type, private address, secondary addresses, cloud-init document and disk size. The root module creates one aws_instance per entry."
  value = merge(
    {
      (local.hostnames.server) = {
        role          = "server"
        instance_type = var.server_instance_type
        ip            = local.server_ip
        secondary_ips = tolist([])
        user_data     = local.user_data.server
        disk_gb       = 20
      }
      (local.hostnames.monitoring) = {
        role          = "monitoring"
        instance_type = var.monitoring_instance_type
        ip            = local.monitoring_ip
        secondary_ips = tolist([])
        user_data     = local.user_data.monitoring
        disk_gb       = 40
      }
    },
    {
      for i, a in local.agents : a.name => {
        role          = "agent"
        instance_type = var.agent_instance_type
        ip            = a.ip
        secondary_ips = tolist(a.secondary_ips)
        user_data     = local.user_data.agents[i]
        disk_gb       = 20
      }
    },
  )
}
