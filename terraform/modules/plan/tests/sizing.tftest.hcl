# The sizing arithmetic: the defaults hold scenarios/1m.yaml's million, the
# README's 2M and 5M configurations hold theirs, and impossible labs are
# refused before anything is created, with what to change.

variables {
  region                          = "us-east-1"
  admin_cidr                      = "198.51.100.7/32"
  artifact_bucket                 = "wslab-artifacts-test"
  token_parameter_name            = "/wslab/agent-token"
  grafana_password_parameter_name = "/wslab/grafana-admin-password"
}

run "a_million_fits_the_defaults" {
  command = plan

  assert {
    condition     = output.sizing.ok && length(output.sizing.problems) == 0 && output.sizing_gate
    error_message = "The defaults must hold 1,000,000 connections: ${jsonencode(output.sizing.problems)}"
  }
  # 1024-65535 is 64,512 ports; the lab's 7 listening ports are reserved.
  assert {
    condition     = output.sizing.ports_in_range == 64512 && output.sizing.usable_ports_per_address == 64505
    error_message = "Ports per address: ${output.sizing.ports_in_range} in range, ${output.sizing.usable_ports_per_address} usable"
  }
  assert {
    condition     = output.sizing.connections_per_agent == 100000 && output.sizing.ports_per_agent == 4 * 64505 && output.sizing.port_capacity_total == 10 * 4 * 64505
    error_message = "10 agents x 4 addresses x 64,505 ports: ${jsonencode(output.sizing)}"
  }
  assert {
    condition     = output.sizing.port_capacity_total >= 1.25 * 1000000 && output.sizing.ports_needed_per_agent == 125000
    error_message = "Port headroom of 1.25 not met"
  }
  # BENCHMARKS.md's measured user space + 5 KiB of kernel per socket.
  assert {
    condition     = output.sizing.server_bytes_per_connection == 1218 + 5120 && output.sizing.agent_bytes_per_connection == 1690 + 5120
    error_message = "Per-connection memory: server ${output.sizing.server_bytes_per_connection}, agent ${output.sizing.agent_bytes_per_connection}"
  }
  # 1e6 x 6338 B x 1.5 + 2 GiB = 10.85 GiB of the c7i.4xlarge's 32.
  assert {
    condition     = output.sizing.server_memory_needed_gib == 10.85 && output.sizing.server_memory_gib == 32
    error_message = "Server memory: ${output.sizing.server_memory_needed_gib} GiB needed"
  }
  # 1e5 x 6810 B x 1.5 + 2 GiB = 2.95 GiB of the c7i.xlarge's 8.
  assert {
    condition     = output.sizing.agent_memory_needed_gib == 2.95 && output.sizing.agent_memory_gib == 8
    error_message = "Agent memory: ${output.sizing.agent_memory_needed_gib} GiB needed"
  }
  # Rooms of ten, a tenth chatting once a second: 100k in, 1M deliveries
  # out; each agent sends 10k and receives 100k a second, 27.5k per vCPU.
  assert {
    condition     = output.sizing.messages_in_per_second == 100000 && output.sizing.deliveries_per_second == 1000000 && output.sizing.agent_messages_per_vcpu == 27500
    error_message = "Message rates: ${jsonencode(output.sizing)}"
  }
  assert {
    condition     = output.sizing.server_nofile == 2097152 && output.sizing.agent_nofile == 1048576 && output.sizing.server_max_connections >= 1100000
    error_message = "Open-file limits: server ${output.sizing.server_nofile}, agent ${output.sizing.agent_nofile}"
  }
  # 16 + 10 x 4 + 2: above the 32 vCPUs new accounts often may run.
  assert {
    condition     = output.sizing.total_vcpus == 58
    error_message = "vCPUs: ${output.sizing.total_vcpus}"
  }
  assert {
    condition     = output.sizing.estimated_usd_per_hour > 2.5 && output.sizing.estimated_usd_per_hour < 3
    error_message = "Estimated cost per hour: ${output.sizing.estimated_usd_per_hour}"
  }
}

run "one_agent_with_one_address_is_refused_for_a_million" {
  command = plan

  variables {
    agent_count         = 1
    addresses_per_agent = 1
  }

  expect_failures = [output.sizing_gate]
}

run "the_refusal_says_what_to_change" {
  command = plan

  variables {
    agent_count         = 1
    addresses_per_agent = 1
    enforce_sizing      = false
  }

  assert {
    condition     = !output.sizing.ok && output.sizing_gate
    error_message = "1 agent x 1 address must fail the sizing but pass the gate when enforce_sizing = false"
  }
  # 1.25M ports needed / 64,505 per address = 20 addresses.
  assert {
    condition     = length([for p in output.sizing.problems : p if startswith(p, "source ports:") && strcontains(p, "raise addresses_per_agent to 20")]) == 1
    error_message = "Missing the source-port problem: ${jsonencode(output.sizing.problems)}"
  }
  assert {
    condition     = length([for p in output.sizing.problems : p if startswith(p, "agent memory:")]) == 1 && length([for p in output.sizing.problems : p if startswith(p, "agent CPU:")]) == 1
    error_message = "A million connections on one c7i.xlarge must fail on memory and CPU too: ${jsonencode(output.sizing.problems)}"
  }
}

run "a_server_too_small_for_the_memory" {
  command = plan

  variables {
    server_instance_type = "c7i.large"
    enforce_sizing       = false
  }

  assert {
    condition     = length(output.sizing.problems) == 1 && startswith(output.sizing.problems[0], "server memory:") && strcontains(output.sizing.problems[0], "c7i.large has 4 GiB")
    error_message = "Expected only the server memory problem: ${jsonencode(output.sizing.problems)}"
  }
}

run "more_addresses_than_the_interface_carries" {
  command = plan

  # A c7i.xlarge interface carries 15 IPv4 addresses: the primary + 14.
  variables {
    addresses_per_agent = 15
    enforce_sizing      = false
  }

  assert {
    condition     = length(output.sizing.problems) == 1 && strcontains(output.sizing.problems[0], "1 primary + 14 secondary")
    error_message = "Expected the per-interface address limit: ${jsonencode(output.sizing.problems)}"
  }
}

run "an_instance_type_the_table_lacks" {
  command = plan

  variables {
    agent_instance_type = "x9.huge"
  }

  expect_failures = [output.sizing_gate]
}

run "more_agents_than_the_subnet_holds" {
  command = plan

  # 900 x 4 = 3,600 secondary addresses; hosts 1024-4094 hold 3,071.
  variables {
    agent_count    = 900
    enforce_sizing = false
  }

  assert {
    condition     = length([for p in output.sizing.problems : p if strcontains(p, "do not fit the /20 subnet")]) == 1 && length(output.addresses.agents) == 0
    error_message = "Expected the address-plan problem: ${jsonencode(output.sizing.problems)}"
  }
}

# README: 2M is twenty agents like the ten of 1M, and a c7i.8xlarge server.
run "two_million_as_the_readme_says" {
  command = plan

  variables {
    target_connections   = 2000000
    agent_count          = 20
    server_instance_type = "c7i.8xlarge"
  }

  assert {
    condition     = output.sizing.ok && output.sizing.connections_per_agent == 100000 && output.sizing.server_memory_needed_gib < 64
    error_message = "2M: ${jsonencode(output.sizing.problems)}"
  }
  assert {
    condition     = output.sizing.estimated_usd_per_hour > 5 && output.sizing.estimated_usd_per_hour < 5.5
    error_message = "2M cost per hour: ${output.sizing.estimated_usd_per_hour}"
  }
}

# README: 5M is 25 c7i.2xlarge agents of 200k with 5 addresses each, and a
# c7i.16xlarge server.
run "five_million_as_the_readme_says" {
  command = plan

  variables {
    target_connections   = 5000000
    agent_count          = 25
    addresses_per_agent  = 5
    agent_instance_type  = "c7i.2xlarge"
    server_instance_type = "c7i.16xlarge"
  }

  assert {
    condition     = output.sizing.ok && output.sizing.connections_per_agent == 200000 && output.sizing.ports_per_agent >= output.sizing.ports_needed_per_agent
    error_message = "5M: ${jsonencode(output.sizing.problems)}"
  }
  assert {
    condition     = output.sizing.server_nofile >= 5500000 && output.sizing.server_max_connections >= 5000000
    error_message = "5M open files: ${output.sizing.server_nofile}"
  }
  assert {
    condition     = output.sizing.estimated_usd_per_hour > 11.8 && output.sizing.estimated_usd_per_hour < 12.3
    error_message = "5M cost per hour: ${output.sizing.estimated_usd_per_hour}"
  }
}
