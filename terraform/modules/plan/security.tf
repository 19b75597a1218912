# Every ingress rule of the lab, as data: the root module creates exactly
# these (for_each over them), so the tests that read this list check the
# rules that exist. Sources are either another of the lab's security
# groups (server, agents, monitoring) or a CIDR block; egress is open.
#
# Nothing here is open to the world unless allow_public_websocket is set,
# and then only the server's WebSocket port.
locals {
  node_groups = ["server", "agents", "monitoring"]

  admin_rules = concat(
    [for g in local.node_groups : {
      name                  = "${g}-ssh-from-admin"
      security_group        = g
      port                  = 22
      cidr_ipv4             = var.admin_cidr
      source_security_group = null
      description           = "SSH from the admin CIDR"
    }],
    [
      {
        name                  = "monitoring-grafana-from-admin"
        security_group        = "monitoring"
        port                  = 3000
        cidr_ipv4             = var.admin_cidr
        source_security_group = null
        description           = "Grafana from the admin CIDR"
      },
      {
        name                  = "monitoring-prometheus-from-admin"
        security_group        = "monitoring"
        port                  = 9090
        cidr_ipv4             = var.admin_cidr
        source_security_group = null
        description           = "Prometheus UI from the admin CIDR"
      },
    ],
  )

  lab_rules = concat(
    [
      {
        name                  = "server-ws-from-agents"
        security_group        = "server"
        port                  = 8080
        cidr_ipv4             = null
        source_security_group = "agents"
        description           = "WebSocket load from the agents"
      },
      {
        name                  = "server-metrics-from-monitoring"
        security_group        = "server"
        port                  = 9090
        cidr_ipv4             = null
        source_security_group = "monitoring"
        description           = "Prometheus scrapes the server"
      },
      {
        name                  = "agents-control-from-monitoring"
        security_group        = "agents"
        port                  = 7070
        cidr_ipv4             = null
        source_security_group = "monitoring"
        description           = "The coordinator's control connections"
      },
      {
        name                  = "agents-metrics-from-monitoring"
        security_group        = "agents"
        port                  = 9091
        cidr_ipv4             = null
        source_security_group = "monitoring"
        description           = "Prometheus scrapes the agents"
      },
    ],
    [for g in local.node_groups : {
      name                  = "${g}-node-exporter-from-monitoring"
      security_group        = g
      port                  = 9100
      cidr_ipv4             = null
      source_security_group = "monitoring"
      description           = "Prometheus scrapes the node exporter"
    }],
  )

  public_rules = var.allow_public_websocket ? [
    {
      name                  = "server-ws-from-anywhere"
      security_group        = "server"
      port                  = 8080
      cidr_ipv4             = "0.0.0.0/0"
      source_security_group = null
      description           = "WebSocket from anywhere (allow_public_websocket = true)"
    },
  ] : []

  ingress_rules = [
    for r in concat(local.admin_rules, local.lab_rules, local.public_rules) : merge(r, {
      protocol  = "tcp"
      from_port = r.port
      to_port   = r.port
    })
  ]
}
