# Whether the lab can hold target_connections: source ports on the
# agents, memory on the server and the agents, the agents' CPU for the
# message rate, and the address plan. The figures come from var.sizing
# (measured values, see its description); every check that fails adds one
# sentence to `problems`, which says what to change.
locals {
  gib = 1073741824

  # The agents' kernels hand out source ports from this range (the sysctl
  # below widens Linux's default 32768-60999). Ports the lab listens on are
  # reserved (ip_local_reserved_ports), so an agent's outgoing connection
  # can never take the port its own listener needs after a restart.
  port_range_low           = 1024
  port_range_high          = 65535
  ports_in_range           = local.port_range_high - local.port_range_low + 1
  reserved_ports           = [3000, 7070, 8080, 9090, 9091, 9095, 9100]
  reserved_in_range        = [for p in local.reserved_ports : p if p >= local.port_range_low && p <= local.port_range_high]
  usable_ports_per_address = local.ports_in_range - length(local.reserved_in_range)

  # One target address (the server's ws://IP:8080): a TCP connection needs
  # a distinct (source address, source port) per target, so an agent holds
  # addresses x usable ports connections at most.
  connections_per_agent  = ceil(var.target_connections / var.agent_count)
  ports_per_agent        = var.addresses_per_agent * local.usable_ports_per_address
  ports_needed_per_agent = ceil(local.connections_per_agent * var.sizing.port_headroom)
  port_capacity_total    = var.agent_count * local.ports_per_agent

  server_bytes_per_connection = var.sizing.server_bytes_per_connection + var.sizing.kernel_bytes_per_socket
  agent_bytes_per_connection  = var.sizing.agent_bytes_per_connection + var.sizing.kernel_bytes_per_socket
  os_reserve_bytes            = var.sizing.os_reserve_gib * local.gib

  server_memory_needed = ceil(var.target_connections * local.server_bytes_per_connection * var.sizing.memory_headroom + local.os_reserve_bytes)
  agent_memory_needed  = ceil(local.connections_per_agent * local.agent_bytes_per_connection * var.sizing.memory_headroom + local.os_reserve_bytes)
  server_memory        = local.types.server.memory_gib * local.gib
  agent_memory         = local.types.agent.memory_gib * local.gib

  # The chat load: every chatter sends `rate` messages a second to its
  # room, and every member of the room (the sender too) gets a copy.
  messages_in_per_second     = var.target_connections * var.scenario.chatters * var.scenario.rate
  deliveries_per_second      = local.messages_in_per_second * var.scenario.room_size
  agent_sent_per_second      = local.connections_per_agent * var.scenario.chatters * var.scenario.rate
  agent_received_per_second  = local.agent_sent_per_second * var.scenario.room_size
  agent_messages_per_second  = local.agent_sent_per_second + local.agent_received_per_second
  agent_messages_per_vcpu    = local.types.agent.vcpu > 0 ? local.agent_messages_per_second / local.types.agent.vcpu : local.agent_messages_per_second
  agent_secondaries_possible = max(local.types.agent.ipv4_per_eni - 1, 0)

  # Open files: one per connection plus room for listeners, logs and
  # reconnects, rounded up to a whole 2^20 (fs.nr_open must be at least
  # the largest LimitNOFILE on the machine).
  mebi               = 1048576
  server_nofile      = ceil((ceil(var.target_connections * 1.1) + 65536) / local.mebi) * local.mebi
  agent_nofile       = ceil((local.ports_needed_per_agent + 65536) / local.mebi) * local.mebi
  monitoring_nofile  = local.mebi
  server_max_clients = local.server_nofile - 65536

  table_hint = "add its line (vCPUs, memory, IPv4 addresses per interface, price) to terraform/modules/plan/instance_types.tf"

  problems = compact([
    contains(keys(local.instance_types), var.server_instance_type) ? "" : "server_instance_type ${var.server_instance_type} is not in the sizing table: ${local.table_hint}",
    contains(keys(local.instance_types), var.agent_instance_type) ? "" : "agent_instance_type ${var.agent_instance_type} is not in the sizing table: ${local.table_hint}",
    contains(keys(local.instance_types), var.monitoring_instance_type) ? "" : "monitoring_instance_type ${var.monitoring_instance_type} is not in the sizing table: ${local.table_hint}",
    local.address_plan_fits ? "" : "${var.agent_count} agents x ${var.addresses_per_agent} addresses = ${local.secondary_hosts} secondary addresses do not fit the /20 subnet's ${local.last_usable_host - local.first_secondary_host + 1} (hosts ${local.first_secondary_host}-${local.last_usable_host}): use fewer, larger agents",
    local.ports_per_agent >= local.ports_needed_per_agent ? "" : "source ports: each agent holds ${local.connections_per_agent} connections and needs ${local.ports_needed_per_agent} ports with ${var.sizing.port_headroom}x headroom, but ${var.addresses_per_agent} address(es) x ${local.usable_ports_per_address} ports = ${local.ports_per_agent}: raise addresses_per_agent to ${ceil(local.ports_needed_per_agent / local.usable_ports_per_address)} or add agents",
    var.addresses_per_agent <= local.agent_secondaries_possible ? "" : "${var.agent_instance_type} carries ${local.types.agent.ipv4_per_eni} IPv4 addresses per interface (1 primary + ${local.agent_secondaries_possible} secondary), fewer than addresses_per_agent = ${var.addresses_per_agent}: use a larger agent type or more agents",
    local.server_memory >= local.server_memory_needed ? "" : "server memory: ${var.target_connections} connections x ${local.server_bytes_per_connection} B x ${var.sizing.memory_headroom} + ${var.sizing.os_reserve_gib} GiB = ${format("%.1f", local.server_memory_needed / local.gib)} GiB, but ${var.server_instance_type} has ${local.types.server.memory_gib} GiB: pick a larger server type",
    local.agent_memory >= local.agent_memory_needed ? "" : "agent memory: ${local.connections_per_agent} connections x ${local.agent_bytes_per_connection} B x ${var.sizing.memory_headroom} + ${var.sizing.os_reserve_gib} GiB = ${format("%.1f", local.agent_memory_needed / local.gib)} GiB, but ${var.agent_instance_type} has ${local.types.agent.memory_gib} GiB: add agents or pick a larger agent type",
    local.agent_messages_per_vcpu <= var.sizing.agent_messages_per_vcpu ? "" : "agent CPU: each agent sends ${local.agent_sent_per_second} and receives ${local.agent_received_per_second} messages/s, ${format("%.0f", local.agent_messages_per_vcpu)} per vCPU, above the ${var.sizing.agent_messages_per_vcpu} one loadgen core keeps at low latency: add agents or pick a type with more vCPUs",
  ])

  public_ipv4_usd_per_hour = 0.005
  ebs_gp3_usd_per_gb_hour  = 0.08 / 730
  root_volume_gb           = { server = 20, agent = 20, monitoring = 40 }
  instances_usd_per_hour   = local.types.server.usd_per_hour + var.agent_count * local.types.agent.usd_per_hour + local.types.monitoring.usd_per_hour
  extras_usd_per_hour = (
    (var.agent_count + 2) * local.public_ipv4_usd_per_hour +
    (local.root_volume_gb.server + var.agent_count * local.root_volume_gb.agent + local.root_volume_gb.monitoring) * local.ebs_gp3_usd_per_gb_hour
  )

  sizing = {
    ok                 = length(local.problems) == 0
    problems           = local.problems
    target_connections = var.target_connections

    agents                   = var.agent_count
    addresses_per_agent      = var.addresses_per_agent
    port_range               = "${local.port_range_low}-${local.port_range_high}"
    ports_in_range           = local.ports_in_range
    reserved_ports           = local.reserved_in_range
    usable_ports_per_address = local.usable_ports_per_address
    connections_per_agent    = local.connections_per_agent
    ports_per_agent          = local.ports_per_agent
    ports_needed_per_agent   = local.ports_needed_per_agent
    port_capacity_total      = local.port_capacity_total

    server_bytes_per_connection = local.server_bytes_per_connection
    agent_bytes_per_connection  = local.agent_bytes_per_connection
    server_memory_needed_gib    = tonumber(format("%.2f", local.server_memory_needed / local.gib))
    server_memory_gib           = local.types.server.memory_gib
    agent_memory_needed_gib     = tonumber(format("%.2f", local.agent_memory_needed / local.gib))
    agent_memory_gib            = local.types.agent.memory_gib

    messages_in_per_second    = local.messages_in_per_second
    deliveries_per_second     = local.deliveries_per_second
    agent_messages_per_second = local.agent_messages_per_second
    agent_messages_per_vcpu   = floor(local.agent_messages_per_vcpu)

    server_nofile          = local.server_nofile
    agent_nofile           = local.agent_nofile
    server_max_connections = local.server_max_clients

    total_vcpus = local.types.server.vcpu + var.agent_count * local.types.agent.vcpu + local.types.monitoring.vcpu

    estimated_usd_per_hour = tonumber(format("%.2f", local.instances_usd_per_hour + local.extras_usd_per_hour))
    price_note             = "us-east-1 on-demand Linux list prices as last known (2024-2025), plus public IPv4 and gp3 root volumes; estimates: check the current price list for your region"
  }
}
