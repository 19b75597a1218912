# Every address in the lab is fixed here, from the VPC block alone, so the
# scenario the coordinator runs (agents and their source addresses) is
# known before anything exists and is tested offline. The root module
# assigns exactly these addresses to the instances.
#
# Layout of the one /20 subnet (AWS keeps .0-.3 and the last address):
#   host 10          the chat server
#   host 11          the monitoring node (Prometheus, Grafana, coordinator)
#   hosts 100-999    agent i's primary address: 100 + i
#   hosts 1024-4094  agent i's secondary addresses: 1024 + i*K ... + K-1
locals {
  vpc_prefix  = tonumber(split("/", var.vpc_cidr)[1])
  subnet_cidr = cidrsubnet(var.vpc_cidr, 20 - local.vpc_prefix, 0)

  first_secondary_host = 1024
  last_usable_host     = 4094
  secondary_hosts      = var.agent_count * var.addresses_per_agent
  address_plan_fits    = local.first_secondary_host + local.secondary_hosts - 1 <= local.last_usable_host

  server_ip     = cidrhost(local.subnet_cidr, 10)
  monitoring_ip = cidrhost(local.subnet_cidr, 11)

  # Built only when it fits, so a too-large plan is reported by the sizing
  # check instead of failing inside cidrhost().
  agents = local.address_plan_fits ? [
    for i in range(var.agent_count) : {
      index    = i
      name     = format("%s-agent-%02d", var.lab_name, i + 1)
      ip       = cidrhost(local.subnet_cidr, 100 + i)
      control  = "${cidrhost(local.subnet_cidr, 100 + i)}:7070"
      metrics  = "${cidrhost(local.subnet_cidr, 100 + i)}:9091"
      first_ip = cidrhost(local.subnet_cidr, local.first_secondary_host + i * var.addresses_per_agent)
      last_ip  = cidrhost(local.subnet_cidr, local.first_secondary_host + (i + 1) * var.addresses_per_agent - 1)
      secondary_ips = [
        for j in range(var.addresses_per_agent) :
        cidrhost(local.subnet_cidr, local.first_secondary_host + i * var.addresses_per_agent + j)
      ]
    }
  ] : []
}
