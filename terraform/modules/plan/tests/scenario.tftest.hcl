# The address plan and the scenario written for the agents: every agent
# with its control address and its own secondary addresses as source_ips,
# the target the server's fixed address, scenarios/1m.yaml's phase.

variables {
  region                          = "us-east-1"
  admin_cidr                      = "198.51.100.7/32"
  artifact_bucket                 = "wslab-artifacts-test"
  token_parameter_name            = "/wslab/agent-token"
  grafana_password_parameter_name = "/wslab/grafana-admin-password"
}

run "every_address_is_unique_and_in_the_subnet" {
  command = plan

  assert {
    condition     = output.addresses.subnet_cidr == "10.42.0.0/20" && output.addresses.server_ip == "10.42.0.10" && output.addresses.monitoring_ip == "10.42.0.11"
    error_message = "Address plan: ${jsonencode(output.addresses)}"
  }
  assert {
    condition = length(distinct(concat(
      [output.addresses.server_ip, output.addresses.monitoring_ip],
      [for a in output.addresses.agents : a.ip],
      flatten([for a in output.addresses.agents : a.secondary_ips]),
    ))) == 2 + 10 + 10 * 4
    error_message = "Two addresses collide"
  }
  # 10.42.0.0/20 is 10.42.0.0-10.42.15.255; AWS keeps .0-.3 and the last.
  assert {
    condition = alltrue([
      for ip in flatten([for a in output.addresses.agents : concat([a.ip], a.secondary_ips)]) :
      can(regex("^10\\.42\\.([0-9]|1[0-5])\\.[0-9]+$", ip)) && !contains(["10.42.0.0", "10.42.0.1", "10.42.0.2", "10.42.0.3", "10.42.15.255"], ip)
    ])
    error_message = "An agent address is outside the subnet or reserved by AWS"
  }
  assert {
    condition     = output.addresses.agents[9].secondary_ips == ["10.42.4.36", "10.42.4.37", "10.42.4.38", "10.42.4.39"] && output.addresses.agents[9].ip == "10.42.0.109"
    error_message = "Agent 10: ${jsonencode(output.addresses.agents[9])}"
  }
}

run "the_scenario_names_every_agent_with_its_own_addresses" {
  command = plan

  assert {
    condition     = output.scenario.file == "cloud-1m.yaml" && yamldecode(output.scenario.yaml).name == "cloud-1m"
    error_message = "Scenario name: ${output.scenario.name}"
  }
  assert {
    condition     = yamldecode(output.scenario.yaml).target.urls == ["ws://10.42.0.10:8080/"] && yamldecode(output.scenario.yaml).target.workload == "chat-binary"
    error_message = "The target must be the server's fixed address"
  }
  assert {
    condition = [for a in yamldecode(output.scenario.yaml).agents.static : a] == [
      for a in output.addresses.agents : { addr = "${a.ip}:7070", source_ips = "${a.secondary_ips[0]}-${a.secondary_ips[3]}" }
    ]
    error_message = "Agents in the scenario: ${jsonencode(yamldecode(output.scenario.yaml).agents.static)}"
  }
  assert {
    condition     = yamldecode(output.scenario.yaml).agents.ports_per_address == output.sizing.usable_ports_per_address
    error_message = "The coordinator's capacity check must use the widened port range"
  }
}

run "the_phase_is_scenarios_1m_yaml_s" {
  command = plan

  assert {
    condition = yamldecode(output.scenario.yaml).phases == [{
      name          = "ramp-and-hold"
      duration      = "300s"
      connections   = 1000000
      ramp          = 20000
      max_inflight  = 2048
      rooms         = 100000
      chatters      = 0.1
      rate          = 1
      size          = 64
      ping_interval = "30s"
      drain         = "5s"
    }]
    error_message = "Phase: ${jsonencode(yamldecode(output.scenario.yaml).phases)}"
  }
  assert {
    condition     = yamldecode(output.scenario.yaml).thresholds == ["connections_held >= 1000000", "connect_errors_ratio < 0.001", "delivery_p99_ms < 100", "messages_lost == 0"]
    error_message = "Thresholds: ${jsonencode(yamldecode(output.scenario.yaml).thresholds)}"
  }
}

run "another_vpc_and_more_connections_move_everything" {
  command = plan

  variables {
    vpc_cidr             = "10.7.0.0/16"
    target_connections   = 2000000
    agent_count          = 20
    server_instance_type = "c7i.8xlarge"
  }

  assert {
    condition     = output.scenario.file == "cloud-2m.yaml" && yamldecode(output.scenario.yaml).target.urls == ["ws://10.7.0.10:8080/"]
    error_message = "Scenario for 2M in 10.7.0.0/16: ${output.scenario.file}"
  }
  assert {
    condition     = length(yamldecode(output.scenario.yaml).agents.static) == 20 && yamldecode(output.scenario.yaml).agents.static[19].addr == "10.7.0.119:7070"
    error_message = "20 agents expected"
  }
  # 2M at 20k/s: a 100 s ramp, then the same 250 s held.
  assert {
    condition     = yamldecode(output.scenario.yaml).phases[0].duration == "350s" && yamldecode(output.scenario.yaml).phases[0].rooms == 200000
    error_message = "Phase for 2M: ${jsonencode(yamldecode(output.scenario.yaml).phases[0])}"
  }
  assert {
    condition     = strcontains(output.user_data_files.agents[19]["/etc/systemd/system/wslab-agent.service"], "--allow-target 10.7.0.10 ")
    error_message = "The agents may load only this lab's server"
  }
}

run "a_vpc_block_with_host_bits_is_refused" {
  command = plan

  variables {
    vpc_cidr = "10.42.1.0/16"
  }

  expect_failures = [var.vpc_cidr]
}

# The root module creates one instance per node: every agent with its own
# secondary addresses, the server and the monitoring node without any.
run "every_node_is_planned_once_with_its_role_and_addresses" {
  command = plan

  variables {
    agent_count         = 3
    addresses_per_agent = 2
    target_connections  = 100000
  }

  assert {
    condition     = length(output.nodes) == 5
    error_message = "3 agents + server + monitoring must be 5 nodes, got ${length(output.nodes)}"
  }

  assert {
    condition     = length([for n in values(output.nodes) : n if n.role == "agent"]) == 3
    error_message = "expected 3 agent nodes"
  }

  assert {
    condition = alltrue([
      for a in output.addresses.agents :
      jsonencode(output.nodes[a.name].secondary_ips) == jsonencode(a.secondary_ips) && length(a.secondary_ips) == 2 && output.nodes[a.name].ip == a.ip
    ])
    error_message = "each agent node must carry its own private and secondary addresses"
  }

  assert {
    condition = alltrue([
      for n in values(output.nodes) : length(n.secondary_ips) == 0 if n.role != "agent"
    ])
    error_message = "only agents have secondary addresses"
  }

  assert {
    condition     = length(distinct([for n in values(output.nodes) : n.ip])) == 5
    error_message = "every node needs an address of its own"
  }

  assert {
    condition     = alltrue([for name, n in output.nodes : strcontains(n.user_data, "wslab ${n.role} node \"${name}\"")])
    error_message = "each node boots its own cloud-init document"
  }
}
