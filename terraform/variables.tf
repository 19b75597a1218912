variable "region" {
  description = "AWS region of the lab."
  type        = string
  default     = "us-east-1"
}

variable "lab_name" {
  description = "Names every resource; instances carry it as tag Lab, which Prometheus discovers them by. Two labs in one account need two names."
  type        = string
  default     = "wslab"
}

variable "admin_cidr" {
  description = "The only addresses that may reach SSH, Grafana (3000) and Prometheus (9090): your own address as a /32, e.g. 198.51.100.7/32. Required; 0.0.0.0/0 is refused."
  type        = string
}

variable "key_name" {
  description = "Name of an existing EC2 key pair in the region, for SSH as user ubuntu."
  type        = string
}

variable "vpc_cidr" {
  description = "The lab's VPC; its first /20 is the subnet, and every address in the lab is computed from it."
  type        = string
  default     = "10.42.0.0/16"
}

variable "availability_zone" {
  description = "Availability zone of the subnet. Unset: the first zone (alphabetically) that offers all three instance types."
  type        = string
  default     = null
}

variable "server_instance_type" {
  description = "The chat server's instance type."
  type        = string
  default     = "c7i.4xlarge"
}

variable "agent_instance_type" {
  description = "Every load agent's instance type."
  type        = string
  default     = "c7i.xlarge"
}

variable "monitoring_instance_type" {
  description = "The monitoring node's instance type (Prometheus, Grafana, the coordinator)."
  type        = string
  default     = "m7i.large"
}

variable "agent_count" {
  description = "Load agent instances."
  type        = number
  default     = 10
}

variable "addresses_per_agent" {
  description = "Secondary private IPv4 addresses per agent, each a source address with ~64k ports toward the server."
  type        = number
  default     = 4
}

variable "target_connections" {
  description = "Connections the generated scenario opens and holds; the sizing check refuses a lab that cannot hold them."
  type        = number
  default     = 1000000
}

variable "scenario" {
  description = "Knobs of the generated scenario (defaults: scenarios/1m.yaml's). See modules/plan/variables.tf."
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
}

variable "allow_public_websocket" {
  description = "Open the server's port 8080 to 0.0.0.0/0, to load it from outside the VPC too. The only way anything opens to the world."
  type        = bool
  default     = false
}

variable "enforce_sizing" {
  description = "Refuse to plan a lab the sizing says cannot hold target_connections. false only to probe limits on purpose."
  type        = bool
  default     = true
}

variable "binaries_dir" {
  description = "Where `cargo build --release` put server, loadgen and coordinator; relative paths are from this directory (terraform/)."
  type        = string
  default     = "../target/release"

  validation {
    condition = alltrue([
      for b in ["server", "loadgen", "coordinator"] :
      fileexists(startswith(var.binaries_dir, "/") ? "${var.binaries_dir}/${b}" : "${path.module}/${var.binaries_dir}/${b}")
    ])
    error_message = "binaries_dir must hold server, loadgen and coordinator: run `cargo build --release` at the repository's root first (on a system with glibc 2.39 or older, see README.md)."
  }
}

variable "check_vcpu_quota" {
  description = "Refuse to plan when the account's on-demand vCPU quota for standard instances (EC2 quota L-1216C47A) is below what the lab needs. Needs servicequotas:GetServiceQuota; false skips the check."
  type        = bool
  default     = true
}
