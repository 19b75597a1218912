# --- the lab ------------------------------------------------------------

variable "lab_name" {
  description = "Names every resource and tags every instance (tag Lab), which is how Prometheus finds this lab's instances."
  type        = string
  default     = "wslab"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.lab_name))
    error_message = "lab_name: 3-20 characters, lower-case letters, digits and '-', starting with a letter (it becomes part of bucket, role and host names)."
  }
}

variable "region" {
  description = "AWS region: Prometheus' EC2 discovery and the instances' AWS CLI calls use it."
  type        = string
}

variable "vpc_cidr" {
  description = "The lab's VPC. Its first /20 is the one subnet; every address in the lab is computed from it."
  type        = string
  default     = "10.42.0.0/16"

  validation {
    condition = (
      can(cidrhost(var.vpc_cidr, 0)) &&
      can(regex("^[0-9.]+/(1[6-9]|20)$", var.vpc_cidr)) &&
      try(cidrhost(var.vpc_cidr, 0) == split("/", var.vpc_cidr)[0], false)
    )
    error_message = "vpc_cidr must be an IPv4 network from /16 to /20 with no host bits set, e.g. 10.42.0.0/16."
  }
}

variable "admin_cidr" {
  description = "The only addresses that reach SSH (22), Grafana (3000) and Prometheus (9090). Your own address, e.g. 198.51.100.7/32. Required: there is no safe default."
  type        = string

  validation {
    condition     = can(cidrhost(var.admin_cidr, 0)) && can(regex("^[0-9.]+/[0-9]+$", var.admin_cidr))
    error_message = "admin_cidr must be an IPv4 CIDR block such as 198.51.100.7/32."
  }
  validation {
    condition     = can(regex("/([89]|[12][0-9]|3[0-2])$", var.admin_cidr))
    error_message = "admin_cidr must not open the lab to the world: use a prefix of /8 or longer (your address as /32 is best), never 0.0.0.0/0."
  }
}

variable "allow_public_websocket" {
  description = "Open the server's WebSocket port 8080 to 0.0.0.0/0 (to load it from outside the VPC too). The only rule that can open anything to the world."
  type        = bool
  default     = false
}

# --- the machines ---------------------------------------------------------

variable "server_instance_type" {
  description = "The chat server's instance type (must be in the sizing table, instance_types.tf)."
  type        = string
  default     = "c7i.4xlarge"
}

variable "agent_instance_type" {
  description = "Every load agent's instance type (must be in the sizing table)."
  type        = string
  default     = "c7i.xlarge"
}

variable "monitoring_instance_type" {
  description = "The monitoring node's instance type: Prometheus, Grafana and the coordinator."
  type        = string
  default     = "m7i.large"
}

variable "agent_count" {
  description = "Load agent instances."
  type        = number
  default     = 10

  validation {
    condition     = var.agent_count >= 1 && var.agent_count <= 900 && floor(var.agent_count) == var.agent_count
    error_message = "agent_count must be a whole number from 1 to 900 (the address plan has room for 900 agents)."
  }
}

variable "addresses_per_agent" {
  description = "Secondary private IPv4 addresses per agent. Each is a source address with its own ~64k ports toward the server."
  type        = number
  default     = 4

  validation {
    condition     = var.addresses_per_agent >= 1 && var.addresses_per_agent <= 49 && floor(var.addresses_per_agent) == var.addresses_per_agent
    error_message = "addresses_per_agent must be a whole number from 1 to 49."
  }
}

# --- the load -------------------------------------------------------------

variable "target_connections" {
  description = "Connections the generated scenario opens and holds, all agents together."
  type        = number
  default     = 1000000

  validation {
    condition     = var.target_connections >= 1 && floor(var.target_connections) == var.target_connections
    error_message = "target_connections must be a whole number of at least 1."
  }
}

variable "scenario" {
  description = "The generated scenario's knobs (see scenarios/README.md); the defaults are scenarios/1m.yaml's."
  type = object({
    workload        = optional(string, "chat-binary")
    ramp            = optional(number, 20000)
    max_inflight    = optional(number, 2048)
    room_size       = optional(number, 10)
    chatters        = optional(number, 0.1)
    rate            = optional(number, 1)
    size            = optional(number, 64)
    hold_seconds    = optional(number, 250)
    ping_interval   = optional(string, "30s")
    drain           = optional(string, "5s")
    delivery_p99_ms = optional(number, 100)
  })
  default = {}

  validation {
    condition     = var.scenario.ramp > 0 && var.scenario.room_size >= 1 && var.scenario.chatters >= 0 && var.scenario.chatters <= 1 && var.scenario.rate > 0 && var.scenario.hold_seconds >= 10
    error_message = "scenario: ramp > 0, room_size >= 1, chatters in 0..1, rate > 0, hold_seconds >= 10."
  }
}

# --- the figures behind the sizing ----------------------------------------

variable "sizing" {
  description = "Measured figures and margins the sizing uses; see terraform/README.md for where each comes from."
  type = object({
    # BENCHMARKS.md: server user-space RSS per idle connection at 100k.
    server_bytes_per_connection = optional(number, 1218)
    # BENCHMARKS.md: loadgen RSS per connection at 100k.
    agent_bytes_per_connection = optional(number, 1690)
    # shared/MACHINE-FACTS.md: ~10.1 KB of kernel slab per TCP pair, so
    # about 5 KB per socket on each side; rounded up to 5 KiB.
    kernel_bytes_per_socket = optional(number, 5120)
    # Socket buffers under traffic, allocator slack, page cache.
    memory_headroom = optional(number, 1.5)
    # Left for the OS, node exporter and the process' own start-up RSS.
    os_reserve_gib = optional(number, 2)
    # Spare source ports: connections per agent x this must fit.
    port_headroom = optional(number, 1.25)
    # BENCHMARKS.md: one loadgen core keeps ~50,000 msg/s (sent + received) at low latency.
    agent_messages_per_vcpu = optional(number, 50000)
  })
  default = {}
}

variable "enforce_sizing" {
  description = "Refuse to plan a lab the sizing says cannot hold target_connections. Set false only to probe limits on purpose."
  type        = bool
  default     = true
}

# --- what the instances fetch (names only: never a secret) --------------

variable "artifact_bucket" {
  description = "S3 bucket holding the binaries, scenarios, Prometheus rules and Grafana dashboards."
  type        = string
}

variable "token_parameter_name" {
  description = "SSM SecureString parameter holding the agents' token. Only its name goes into user data; the instances read the value at boot."
  type        = string

  validation {
    condition     = can(regex("^/[A-Za-z0-9_./-]+$", var.token_parameter_name))
    error_message = "token_parameter_name must be a path-style SSM parameter name such as /wslab/agent-token."
  }
}

variable "grafana_password_parameter_name" {
  description = "SSM SecureString parameter holding Grafana's admin password (read at boot, like the token)."
  type        = string

  validation {
    condition     = can(regex("^/[A-Za-z0-9_./-]+$", var.grafana_password_parameter_name))
    error_message = "grafana_password_parameter_name must be a path-style SSM parameter name."
  }
}

variable "artifacts_version" {
  description = "A digest of the uploaded files. It is written into every user data, so new binaries mean new instances running them."
  type        = string
  default     = "unversioned"
}

variable "templates_dir" {
  description = "Where the templates are (terraform/templates). Unset, found beside this module, which holds when it is used from this repository by a relative path."
  type        = string
  default     = null
}
