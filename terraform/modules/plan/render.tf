# The documents the instances boot from, rendered from terraform/templates:
# one cloud-config per node, the Prometheus configuration and the scenario
# the coordinator runs against this lab's agents.
locals {
  templates       = coalesce(var.templates_dir, "${path.module}/../../templates")
  scrape_interval = "5s"

  token_env   = "/run/wslab/agent.env"
  grafana_env = "/run/wslab/grafana.env"

  connections_label = (
    var.target_connections % 1000000 == 0 ? "${var.target_connections / 1000000}m" :
    var.target_connections % 1000 == 0 ? "${var.target_connections / 1000}k" :
    tostring(var.target_connections)
  )
  scenario_name = "cloud-${local.connections_label}"
  scenario_file = "${local.scenario_name}.yaml"
  ramp_seconds  = ceil(var.target_connections / var.scenario.ramp)

  scenario_yaml = templatefile("${local.templates}/scenario.yaml.tftpl", {
    lab                 = var.lab_name
    name                = local.scenario_name
    file                = local.scenario_file
    server_ip           = local.server_ip
    agents              = local.agents
    addresses_per_agent = var.addresses_per_agent
    port_range          = "${local.port_range_low}-${local.port_range_high}"
    ports_per_address   = local.usable_ports_per_address
    connections         = var.target_connections
    workload            = var.scenario.workload
    ramp                = var.scenario.ramp
    ramp_seconds        = local.ramp_seconds
    hold_seconds        = var.scenario.hold_seconds
    duration_seconds    = local.ramp_seconds + var.scenario.hold_seconds
    max_inflight        = var.scenario.max_inflight
    rooms               = max(1, floor(var.target_connections / var.scenario.room_size))
    room_size           = var.scenario.room_size
    chatters            = var.scenario.chatters
    rate                = var.scenario.rate
    size                = var.scenario.size
    ping_interval       = var.scenario.ping_interval
    drain               = var.scenario.drain
    delivery_p99_ms     = var.scenario.delivery_p99_ms
  })

  # One scrape job per role; "node" takes every instance of the lab.
  prometheus_jobs = [
    { job = "server", role = "server", port = 9090, comment = "The chat server under test: chat_* and process_*." },
    { job = "agents", role = "agent", port = 9091, comment = "Every load agent: loadgen_agent_*, loadgen_* (the running phase) and process_*." },
    { job = "coordinator", role = "monitoring", port = 9095, comment = "coordinator_*: up only while `coordinator run ... --metrics-listen 0.0.0.0:9095` runs." },
    { job = "node", role = null, port = 9100, comment = "Every machine of the lab: sockets, memory, CPU, network, file descriptors." },
  ]
  prometheus_yml = templatefile("${local.templates}/prometheus.yml.tftpl", {
    lab             = var.lab_name
    region          = var.region
    scrape_interval = local.scrape_interval
    jobs            = local.prometheus_jobs
  })

  # --- kernel settings and limits, per role -------------------------------
  tcp_mem_pages = { for role, t in local.types : role => t.memory_gib * 262144 }
  nofile = {
    server     = local.server_nofile
    agent      = local.agent_nofile
    monitoring = local.monitoring_nofile
  }
  role_connections = {
    server     = var.target_connections
    agent      = local.connections_per_agent
    monitoring = 0
  }
  sysctls = {
    for role in ["server", "agent", "monitoring"] : role => {
      "fs.nr_open"                                          = local.nofile[role]
      "fs.file-max"                                         = 4 * local.nofile[role]
      "net.core.somaxconn"                                  = 65535
      "net.ipv4.tcp_max_syn_backlog"                        = 65535
      "net.core.netdev_max_backlog"                         = 65536
      "net.ipv4.ip_local_port_range"                        = "${local.port_range_low} ${local.port_range_high}"
      "net.ipv4.ip_local_reserved_ports"                    = join(",", local.reserved_ports)
      "net.ipv4.tcp_tw_reuse"                               = 1
      "net.ipv4.tcp_fin_timeout"                            = 15
      "net.ipv4.tcp_max_tw_buckets"                         = local.nofile[role]
      "net.ipv4.tcp_mem"                                    = "${floor(local.tcp_mem_pages[role] / 4)} ${floor(local.tcp_mem_pages[role] * 3 / 8)} ${floor(local.tcp_mem_pages[role] / 2)}"
      "net.ipv4.tcp_rmem"                                   = "4096 16384 4194304"
      "net.ipv4.tcp_wmem"                                   = "4096 16384 4194304"
      "-net.netfilter.nf_conntrack_max"                     = 2 * local.nofile[role]
      "-net.netfilter.nf_conntrack_tcp_timeout_established" = 3600
    }
  }

  file_mode_script = "0755"
  file_mode_config = "0644"

  common_files = {
    for role in ["server", "agent", "monitoring"] : role => [
      {
        path        = "/etc/sysctl.d/90-wslab.conf"
        permissions = local.file_mode_config
        content = templatefile("${local.templates}/sysctl.conf.tftpl", {
          role        = role
          connections = local.role_connections[role]
          sysctls     = local.sysctls[role]
        })
      },
      {
        path        = "/etc/security/limits.d/90-wslab.conf"
        permissions = local.file_mode_config
        content     = templatefile("${local.templates}/limits.conf.tftpl", { nofile = local.nofile[role] })
      },
      {
        path        = "/usr/local/sbin/wslab-bootstrap"
        permissions = local.file_mode_script
        content = templatefile("${local.templates}/bootstrap.sh.tftpl", {
          role              = role
          lab               = var.lab_name
          region            = var.region
          bucket            = var.artifact_bucket
          artifacts_version = var.artifacts_version
          binaries          = local.role_binaries[role]
          enable            = local.role_enable[role]
          restart           = local.role_restart[role]
          scenario_file     = local.scenario_file
          nr_open           = local.nofile[role]
        })
      },
    ]
  }

  # Which secrets each role reads (parameter names only), which binaries it
  # installs and which services it runs. The server needs no secret.
  role_secrets = {
    server = []
    agent = [
      { parameter = var.token_parameter_name, variable = "LOADGEN_AGENT_TOKEN", file = local.token_env },
    ]
    monitoring = [
      { parameter = var.token_parameter_name, variable = "LOADGEN_AGENT_TOKEN", file = local.token_env },
      { parameter = var.grafana_password_parameter_name, variable = "GF_SECURITY_ADMIN_PASSWORD", file = local.grafana_env },
    ]
  }
  role_binaries = {
    server     = ["server"]
    agent      = ["loadgen"]
    monitoring = ["coordinator"]
  }
  role_enable = {
    server     = ["prometheus-node-exporter.service", "wslab-server.service"]
    agent      = ["prometheus-node-exporter.service", "wslab-secondary-ips.service", "wslab-secrets.service", "wslab-agent.service"]
    monitoring = ["prometheus-node-exporter.service", "wslab-secrets.service", "prometheus.service", "grafana-server.service"]
  }
  role_restart = {
    server     = []
    agent      = []
    monitoring = ["prometheus.service"]
  }
  role_packages = {
    server     = ["curl", "unzip", "prometheus-node-exporter"]
    agent      = ["curl", "unzip", "prometheus-node-exporter"]
    monitoring = ["curl", "unzip", "gnupg", "tmux", "prometheus-node-exporter", "prometheus"]
  }

  secrets_files = {
    for role, secrets in local.role_secrets : role => length(secrets) == 0 ? [] : [
      {
        path        = "/usr/local/sbin/wslab-secrets"
        permissions = local.file_mode_script
        content     = templatefile("${local.templates}/secrets.sh.tftpl", { region = var.region, secrets = secrets })
      },
      {
        path        = "/etc/systemd/system/wslab-secrets.service"
        permissions = local.file_mode_config
        content     = file("${local.templates}/secrets.service.tftpl")
      },
    ]
  }

  server_files = [
    {
      path        = "/etc/systemd/system/wslab-server.service"
      permissions = local.file_mode_config
      content = templatefile("${local.templates}/server.service.tftpl", {
        nofile          = local.server_nofile
        max_connections = local.server_max_clients
      })
    },
  ]

  agent_files = [
    for a in local.agents : [
      {
        path        = "/usr/local/sbin/wslab-secondary-ips"
        permissions = local.file_mode_script
        content     = templatefile("${local.templates}/secondary-ips.sh.tftpl", { expected = var.addresses_per_agent + 1 })
      },
      {
        path        = "/etc/systemd/system/wslab-secondary-ips.service"
        permissions = local.file_mode_config
        content     = file("${local.templates}/secondary-ips.service.tftpl")
      },
      {
        path        = "/etc/networkd-dispatcher/routable.d/50-wslab-secondary-ips"
        permissions = local.file_mode_script
        content     = file("${local.templates}/secondary-ips.hook.tftpl")
      },
      {
        path        = "/etc/systemd/system/wslab-agent.service"
        permissions = local.file_mode_config
        content = templatefile("${local.templates}/agent.service.tftpl", {
          nofile    = local.agent_nofile
          server_ip = local.server_ip
          name      = a.name
        })
      },
    ]
  ]

  monitoring_files = [
    {
      path        = "/opt/wslab/scenarios/${local.scenario_file}"
      permissions = local.file_mode_config
      content     = local.scenario_yaml
    },
    {
      path        = "/usr/local/bin/wslab-env"
      permissions = local.file_mode_script
      content     = templatefile("${local.templates}/wslab-env.sh.tftpl", { scenario_file = local.scenario_file })
    },
    {
      path        = "/etc/wslab/prometheus/prometheus.yml"
      permissions = local.file_mode_config
      content     = local.prometheus_yml
    },
    {
      path        = "/etc/systemd/system/prometheus.service.d/wslab.conf"
      permissions = local.file_mode_config
      content     = templatefile("${local.templates}/prometheus.service.conf.tftpl", { retention = "15d" })
    },
    {
      path        = "/etc/systemd/system/grafana-server.service.d/wslab.conf"
      permissions = local.file_mode_config
      content     = file("${local.templates}/grafana.service.conf.tftpl")
    },
    {
      path        = "/etc/wslab/grafana/datasource.yaml"
      permissions = local.file_mode_config
      content     = templatefile("${local.templates}/grafana-datasource.yaml.tftpl", { scrape_interval = local.scrape_interval })
    },
    {
      path        = "/etc/wslab/grafana/dashboards.yaml"
      permissions = local.file_mode_config
      content     = file("${local.templates}/grafana-dashboards.yaml.tftpl")
    },
  ]

  hostnames = {
    server     = "${var.lab_name}-server"
    monitoring = "${var.lab_name}-monitoring"
  }

  cloud_config = {
    for role in ["server", "monitoring"] : role => {
      hostname         = local.hostnames[role]
      manage_etc_hosts = true
      package_update   = true
      package_upgrade  = false
      packages         = local.role_packages[role]
      write_files      = concat(local.common_files[role], local.secrets_files[role], role == "server" ? local.server_files : local.monitoring_files)
      runcmd           = [["/usr/local/sbin/wslab-bootstrap"]]
    }
  }
  agent_cloud_config = [
    for a in local.agents : {
      hostname         = a.name
      manage_etc_hosts = true
      package_update   = true
      package_upgrade  = false
      packages         = local.role_packages.agent
      write_files      = concat(local.common_files.agent, local.secrets_files.agent, local.agent_files[a.index])
      runcmd           = [["/usr/local/sbin/wslab-bootstrap"]]
    }
  ]

  user_data = {
    server = templatefile("${local.templates}/cloud-config.yaml.tftpl", {
      role              = "server"
      hostname          = local.hostnames.server
      lab               = var.lab_name
      artifacts_version = var.artifacts_version
      secret_parameters = [for x in local.role_secrets.server : x.parameter]
      config            = local.cloud_config.server
    })
    monitoring = templatefile("${local.templates}/cloud-config.yaml.tftpl", {
      role              = "monitoring"
      hostname          = local.hostnames.monitoring
      lab               = var.lab_name
      artifacts_version = var.artifacts_version
      secret_parameters = [for x in local.role_secrets.monitoring : x.parameter]
      config            = local.cloud_config.monitoring
    })
    agents = [
      for c in local.agent_cloud_config : templatefile("${local.templates}/cloud-config.yaml.tftpl", {
        role              = "agent"
        hostname          = c.hostname
        lab               = var.lab_name
        artifacts_version = var.artifacts_version
        secret_parameters = [for x in local.role_secrets.agent : x.parameter]
        config            = c
      })
    ]
  }
}
