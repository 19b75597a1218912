# The security groups' ingress rules, which the root module creates one for
# one: nothing open to the world unless allow_public_websocket, and then
# only the server's WebSocket port; each port only from who needs it.

variables {
  region                          = "us-east-1"
  admin_cidr                      = "198.51.100.7/32"
  artifact_bucket                 = "wslab-artifacts-test"
  token_parameter_name            = "/wslab/agent-token"
  grafana_password_parameter_name = "/wslab/grafana-admin-password"
}

run "nothing_is_open_to_the_world_by_default" {
  command = plan

  assert {
    condition     = length([for r in output.ingress_rules : r if contains(["0.0.0.0/0", "::/0"], coalesce(r.cidr_ipv4, "none"))]) == 0
    error_message = "A rule is open to the world: ${jsonencode([for r in output.ingress_rules : r.name if r.cidr_ipv4 != null])}"
  }
  # Every CIDR rule is the admin's; every other rule names a lab group.
  assert {
    condition = alltrue([
      for r in output.ingress_rules :
      (r.cidr_ipv4 == var.admin_cidr && r.source_security_group == null) ||
      (r.cidr_ipv4 == null && contains(["server", "agents", "monitoring"], coalesce(r.source_security_group, "none")))
    ])
    error_message = "A rule has neither the admin CIDR nor a lab group as its only source"
  }
  assert {
    condition     = length(distinct([for r in output.ingress_rules : r.name])) == length(output.ingress_rules) && length(output.ingress_rules) == 12
    error_message = "Rule names must be unique (they key the root module's for_each); expected 12 rules, got ${length(output.ingress_rules)}"
  }
  assert {
    condition     = alltrue([for r in output.ingress_rules : r.protocol == "tcp" && r.from_port == r.to_port])
    error_message = "Every rule opens one TCP port"
  }
}

run "each_port_only_from_who_needs_it" {
  command = plan

  # SSH on every node and Grafana: the admin CIDR only.
  assert {
    condition = (
      jsonencode(sort([for r in output.ingress_rules : r.security_group if r.port == 22])) == jsonencode(["agents", "monitoring", "server"]) &&
      alltrue([for r in output.ingress_rules : r.cidr_ipv4 == var.admin_cidr if contains([22, 3000], r.port)]) &&
      length([for r in output.ingress_rules : r if r.port == 3000]) == 1
    )
    error_message = "SSH and Grafana must be reachable from the admin CIDR only"
  }
  # The agents' control port: the monitoring node (the coordinator) only.
  assert {
    condition = (
      jsonencode([for r in output.ingress_rules : r.source_security_group if r.port == 7070]) == jsonencode(["monitoring"]) &&
      jsonencode([for r in output.ingress_rules : r.security_group if r.port == 7070]) == jsonencode(["agents"])
    )
    error_message = "Port 7070 must be open on the agents to the monitoring group alone"
  }
  assert {
    condition = (
      jsonencode([for r in output.ingress_rules : r.source_security_group if r.port == 8080]) == jsonencode(["agents"]) &&
      jsonencode([for r in output.ingress_rules : r.security_group if r.port == 8080]) == jsonencode(["server"])
    )
    error_message = "The server's WebSocket port must be open to the agents alone"
  }
  # Metrics: Prometheus on the monitoring node scrapes them.
  assert {
    condition = alltrue([
      for r in output.ingress_rules : r.source_security_group == "monitoring"
      if contains([9091, 9100], r.port) || (r.port == 9090 && r.security_group == "server")
    ])
    error_message = "Metrics ports must be open to the monitoring group alone"
  }
}

run "allow_public_websocket_opens_the_server_websocket_port_and_nothing_else" {
  command = plan

  variables {
    allow_public_websocket = true
  }

  assert {
    condition = (
      jsonencode([for r in output.ingress_rules : "${r.security_group}:${r.port}" if contains(["0.0.0.0/0", "::/0"], coalesce(r.cidr_ipv4, "none"))]) == jsonencode(["server:8080"])
    )
    error_message = "allow_public_websocket must add exactly one world rule, server:8080"
  }
  assert {
    condition     = length(output.ingress_rules) == 13
    error_message = "allow_public_websocket adds one rule to the 12"
  }
}

run "the_admin_cidr_cannot_be_the_world" {
  command = plan

  variables {
    admin_cidr = "0.0.0.0/0"
  }

  expect_failures = [var.admin_cidr]
}

run "the_admin_cidr_cannot_be_a_host_name" {
  command = plan

  variables {
    admin_cidr = "my-laptop.example.com"
  }

  expect_failures = [var.admin_cidr]
}

run "each_role_reads_only_its_own_secrets" {
  command = plan

  assert {
    condition = (
      length(output.role_access.server.secret_parameters) == 0 &&
      jsonencode(output.role_access.agent.secret_parameters) == jsonencode(["/wslab/agent-token"]) &&
      jsonencode(sort(output.role_access.monitoring.secret_parameters)) == jsonencode(["/wslab/agent-token", "/wslab/grafana-admin-password"])
    )
    error_message = "Secrets per role: ${jsonencode(output.role_access)}"
  }
  assert {
    condition     = output.role_access.monitoring.discover_instances && !output.role_access.agent.discover_instances && !output.role_access.server.discover_instances
    error_message = "Only the monitoring node (Prometheus) describes instances"
  }
}
