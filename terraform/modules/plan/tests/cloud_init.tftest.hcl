# The cloud-init documents as rendered, decoded back from their text
# (output.user_data_files): kernel settings, services with restart
# policies and open-file limits, the secondary addresses, and no secret.

variables {
  region                          = "us-east-1"
  admin_cidr                      = "198.51.100.7/32"
  artifact_bucket                 = "wslab-artifacts-test"
  token_parameter_name            = "/wslab-test/agent-token"
  grafana_password_parameter_name = "/wslab-test/grafana-admin-password"
}

run "every_document_is_cloud_config_within_the_user_data_limit" {
  command = plan

  assert {
    condition = alltrue([
      for d in concat([output.user_data.server, output.user_data.monitoring], output.user_data.agents) :
      startswith(d, "#cloud-config\n") && yamldecode(d).runcmd == [["/usr/local/sbin/wslab-bootstrap"]]
    ])
    error_message = "Every document must be #cloud-config running wslab-bootstrap"
  }
  # EC2 takes 16 KB of user data; the root module sends it gzipped.
  assert {
    condition = alltrue([
      for d in concat([output.user_data.server, output.user_data.monitoring], output.user_data.agents) :
      length(base64gzip(d)) * 3 / 4 < 16384
    ])
    error_message = "A gzipped document exceeds EC2's 16 KB user data limit"
  }
  assert {
    condition     = length(output.user_data.agents) == 10 && yamldecode(output.user_data.agents[9]).hostname == "wslab-agent-10" && yamldecode(output.user_data.server).hostname == "wslab-server"
    error_message = "One document per agent, each with its host name"
  }
}

run "kernel_settings_for_a_million_connections_on_every_node" {
  command = plan

  assert {
    condition = alltrue([
      for files in concat([output.user_data_files.server, output.user_data_files.monitoring], output.user_data_files.agents) :
      alltrue([
        for line in [
          "net.ipv4.ip_local_port_range = 1024 65535",
          "net.ipv4.ip_local_reserved_ports = 3000,7070,8080,9090,9091,9095,9100",
          "net.core.somaxconn = 65535",
          "net.ipv4.tcp_max_syn_backlog = 65535",
          "net.ipv4.tcp_rmem = 4096 16384 4194304",
          "net.ipv4.tcp_wmem = 4096 16384 4194304",
        ] : strcontains(files["/etc/sysctl.d/90-wslab.conf"], "\n${line}\n")
      ])
    ])
    error_message = "A node lacks a kernel setting"
  }
  assert {
    condition = alltrue([
      for key in ["fs.nr_open", "fs.file-max", "net.ipv4.tcp_mem", "-net.netfilter.nf_conntrack_max"] :
      length(regexall("\n${replace(key, ".", "\\.")} = [0-9]", output.user_data_files.server["/etc/sysctl.d/90-wslab.conf"])) == 1
    ])
    error_message = "The server lacks fs.nr_open, fs.file-max, tcp_mem or the conntrack ceiling"
  }
  # 32 GiB = 8,388,608 pages: a quarter, 3/8 and half of them.
  assert {
    condition     = strcontains(output.user_data_files.server["/etc/sysctl.d/90-wslab.conf"], "\nnet.ipv4.tcp_mem = 2097152 3145728 4194304\n")
    error_message = "tcp_mem must follow the server's memory"
  }
  # fs.nr_open is the ceiling for LimitNOFILE: equal to the services' limit.
  assert {
    condition = (
      strcontains(output.user_data_files.server["/etc/sysctl.d/90-wslab.conf"], "\nfs.nr_open = 2097152\n") &&
      strcontains(output.user_data_files.agents[0]["/etc/sysctl.d/90-wslab.conf"], "\nfs.nr_open = 1048576\n") &&
      strcontains(output.user_data_files.server["/usr/local/sbin/wslab-bootstrap"], "!= \"2097152\"")
    )
    error_message = "fs.nr_open must match each role's open-file limit, and the bootstrap must check it"
  }
  assert {
    condition     = strcontains(output.user_data_files.server["/etc/security/limits.d/90-wslab.conf"], "*    hard nofile 2097152")
    error_message = "Interactive shells must get the open-file limit too"
  }
}

run "the_server_runs_as_a_restarting_service" {
  command = plan

  assert {
    condition = alltrue([
      for line in [
        "Environment=SERVER_LISTEN=0.0.0.0:8080",
        "Environment=SERVER_METRICS_LISTEN=0.0.0.0:9090",
        "ExecStart=/usr/local/bin/server",
        "Restart=always",
        "LimitNOFILE=2097152",
        "WantedBy=multi-user.target",
      ] : strcontains(output.user_data_files.server["/etc/systemd/system/wslab-server.service"], "\n${line}\n")
    ])
    error_message = "wslab-server.service: ${output.user_data_files.server["/etc/systemd/system/wslab-server.service"]}"
  }
  assert {
    condition     = strcontains(output.user_data_files.server["/usr/local/sbin/wslab-bootstrap"], "systemctl enable --now wslab-server.service") && strcontains(output.user_data_files.server["/usr/local/sbin/wslab-bootstrap"], "systemctl enable --now prometheus-node-exporter.service")
    error_message = "The bootstrap must start the server and the node exporter"
  }
  assert {
    condition     = strcontains(output.user_data_files.server["/usr/local/sbin/wslab-bootstrap"], "'s3://wslab-artifacts-test/bin/server'") && !strcontains(output.user_data.server, "bin/loadgen")
    error_message = "The server fetches its own binary from the artifact bucket, and only that"
  }
}

run "every_agent_runs_loadgen_agent_for_this_server" {
  command = plan

  assert {
    condition = alltrue([
      for i, files in output.user_data_files.agents : alltrue([
        for line in [
          "ExecStart=/usr/local/bin/loadgen agent --listen 0.0.0.0:7070 --metrics-listen 0.0.0.0:9091 --allow-target 10.42.0.10 --name ${format("wslab-agent-%02d", i + 1)}",
          "EnvironmentFile=/run/wslab/agent.env",
          "Requires=wslab-secrets.service",
          "Restart=always",
          "LimitNOFILE=1048576",
          "WantedBy=multi-user.target",
        ] : strcontains(files["/etc/systemd/system/wslab-agent.service"], "\n${line}\n")
      ])
    ])
    error_message = "wslab-agent.service of agent 1: ${output.user_data_files.agents[0]["/etc/systemd/system/wslab-agent.service"]}"
  }
  assert {
    condition = alltrue([
      for files in output.user_data_files.agents :
      strcontains(files["/usr/local/sbin/wslab-bootstrap"], "systemctl enable --now wslab-agent.service") &&
      strcontains(files["/usr/local/sbin/wslab-bootstrap"], "systemctl enable --now wslab-secondary-ips.service")
    ])
    error_message = "The bootstrap must start the agent and its addresses"
  }
}

run "secondary_addresses_are_configured_at_every_boot" {
  command = plan

  assert {
    condition = alltrue([
      for files in output.user_data_files.agents :
      strcontains(files["/usr/local/sbin/wslab-secondary-ips"], "network/interfaces/macs/$mac/local-ipv4s") &&
      strcontains(files["/usr/local/sbin/wslab-secondary-ips"], "X-aws-ec2-metadata-token") &&
      strcontains(files["/usr/local/sbin/wslab-secondary-ips"], "ip addr replace \"$ip/$prefix\" dev \"$iface\"") &&
      strcontains(files["/usr/local/sbin/wslab-secondary-ips"], "\nexpected=5 ")
    ])
    error_message = "wslab-secondary-ips must read every address from IMDSv2 and add each idempotently: ${output.user_data_files.agents[0]["/usr/local/sbin/wslab-secondary-ips"]}"
  }
  assert {
    condition = alltrue([
      for line in ["Type=oneshot", "RemainAfterExit=yes", "ExecStart=/usr/local/sbin/wslab-secondary-ips", "Before=wslab-agent.service", "WantedBy=multi-user.target"] :
      strcontains(output.user_data_files.agents[3]["/etc/systemd/system/wslab-secondary-ips.service"], "\n${line}\n")
    ])
    error_message = "wslab-secondary-ips.service must be a boot-time oneshot before the agent"
  }
  assert {
    condition     = strcontains(output.user_data_files.agents[3]["/etc/networkd-dispatcher/routable.d/50-wslab-secondary-ips"], "exec /usr/local/sbin/wslab-secondary-ips")
    error_message = "A reconfigured link must get its addresses back"
  }
  assert {
    condition     = strcontains(output.user_data_files.agents[0]["/etc/systemd/system/wslab-agent.service"], "After=network-online.target wslab-secondary-ips.service")
    error_message = "The agent must start after its addresses"
  }
}

run "no_secret_in_any_document" {
  command = plan

  # Only the parameter names travel; the values are read at boot.
  assert {
    condition = alltrue([
      for d in concat([output.user_data.monitoring], output.user_data.agents) :
      strcontains(d, "aws ssm get-parameter --name '/wslab-test/agent-token' --with-decryption")
    ])
    error_message = "Agents and the monitoring node must read the token from its SSM parameter"
  }
  assert {
    condition = alltrue([
      for d in concat([output.user_data.server, output.user_data.monitoring], output.user_data.agents) :
      length(regexall("LOADGEN_AGENT_TOKEN=[A-Za-z0-9]", d)) == 0 &&
      length(regexall("GF_SECURITY_ADMIN_PASSWORD=[A-Za-z0-9]", d)) == 0 &&
      !strcontains(d, "--token")
    ])
    error_message = "A document assigns a token or password, or passes --token"
  }
  assert {
    condition     = !strcontains(output.user_data.server, "agent-token") && !strcontains(output.user_data.server, "wslab-secrets")
    error_message = "The server needs no secret and must not read one"
  }
  assert {
    condition     = strcontains(output.user_data_files.agents[0]["/usr/local/sbin/wslab-secrets"], "> '/run/wslab/agent.env.tmp'") && strcontains(output.user_data_files.agents[0]["/usr/local/sbin/wslab-secrets"], "umask 077")
    error_message = "The token goes to a root-only file on /run (tmpfs)"
  }
  assert {
    condition     = strcontains(output.user_data_files.monitoring["/usr/local/sbin/wslab-secrets"], "'/wslab-test/grafana-admin-password'") && strcontains(output.user_data_files.monitoring["/etc/systemd/system/grafana-server.service.d/wslab.conf"], "EnvironmentFile=/run/wslab/grafana.env")
    error_message = "Grafana's password comes from its SSM parameter too"
  }
}

run "the_monitoring_node_runs_prometheus_grafana_and_the_coordinator" {
  command = plan

  # The job names the repo's dashboards and alerts query, from EC2 discovery.
  assert {
    condition     = flatten(regexall("\n  - job_name: ([a-z]+)\n", output.prometheus_yml)) == ["prometheus", "server", "agents", "coordinator", "node"]
    error_message = "Prometheus jobs: ${jsonencode(flatten(regexall("job_name: ([a-z]+)", output.prometheus_yml)))}"
  }
  assert {
    condition     = length(regexall("ec2_sd_configs:", output.prometheus_yml)) == 4 && length(regexall("values: \\[\"wslab\"\\]", output.prometheus_yml)) == 4 && strcontains(output.prometheus_yml, "scrape_interval: 5s")
    error_message = "Four EC2-discovered jobs filtered on this lab's tag, scraped every 5 s"
  }
  assert {
    condition     = output.user_data_files.monitoring["/etc/wslab/prometheus/prometheus.yml"] == output.prometheus_yml
    error_message = "The monitoring node must get this Prometheus configuration"
  }
  assert {
    condition     = strcontains(output.user_data_files.monitoring["/etc/wslab/grafana/datasource.yaml"], "uid: prometheus") && strcontains(output.user_data_files.monitoring["/etc/wslab/grafana/dashboards.yaml"], "path: /var/lib/grafana/dashboards")
    error_message = "Grafana's datasource uid must be the one the dashboards name"
  }
  assert {
    condition = alltrue([
      for step in [
        "systemctl enable --now prometheus.service",
        "systemctl enable --now grafana-server.service",
        "https://apt.grafana.com stable main",
        "'s3://wslab-artifacts-test/grafana/dashboards/' /var/lib/grafana/dashboards/",
        "'s3://wslab-artifacts-test/prometheus/' /etc/wslab/prometheus/rules/",
        "'s3://wslab-artifacts-test/bin/coordinator'",
        "/usr/local/bin/coordinator validate /opt/wslab/scenarios/cloud-1m.yaml",
        "promtool check config /etc/wslab/prometheus/prometheus.yml",
      ] : strcontains(output.user_data_files.monitoring["/usr/local/sbin/wslab-bootstrap"], step)
    ])
    error_message = "The monitoring bootstrap misses a step"
  }
  assert {
    condition     = output.user_data_files.monitoring["/opt/wslab/scenarios/cloud-1m.yaml"] == output.scenario.yaml
    error_message = "The generated scenario must be on the monitoring node"
  }
  assert {
    condition     = contains(yamldecode(output.user_data.monitoring).packages, "prometheus") && contains(yamldecode(output.user_data.monitoring).packages, "prometheus-node-exporter")
    error_message = "Prometheus and the node exporter come from Ubuntu's packages"
  }
}
