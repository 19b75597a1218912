# The instance types the sizing knows: vCPUs, memory, how many IPv4
# addresses one network interface carries (the primary plus the
# secondaries), and the Linux on-demand price per hour in us-east-1.
#
# Prices are estimates from AWS's public price list as last known to the
# author (2024-2025): check https://aws.amazon.com/ec2/pricing/on-demand/
# for your region before you rely on them. Other regions cost 0-30 % more.
# A type missing here is refused by the sizing check with a message that
# says to add its line; every figure is on the type's EC2 documentation
# page ("Instance type specifications": network, IPv4 addresses per
# interface).
locals {
  instance_types = {
    "c7i.large"    = { vcpu = 2, memory_gib = 4, ipv4_per_eni = 10, usd_per_hour = 0.0893 }
    "c7i.xlarge"   = { vcpu = 4, memory_gib = 8, ipv4_per_eni = 15, usd_per_hour = 0.1785 }
    "c7i.2xlarge"  = { vcpu = 8, memory_gib = 16, ipv4_per_eni = 15, usd_per_hour = 0.357 }
    "c7i.4xlarge"  = { vcpu = 16, memory_gib = 32, ipv4_per_eni = 30, usd_per_hour = 0.714 }
    "c7i.8xlarge"  = { vcpu = 32, memory_gib = 64, ipv4_per_eni = 30, usd_per_hour = 1.428 }
    "c7i.12xlarge" = { vcpu = 48, memory_gib = 96, ipv4_per_eni = 30, usd_per_hour = 2.142 }
    "c7i.16xlarge" = { vcpu = 64, memory_gib = 128, ipv4_per_eni = 50, usd_per_hour = 2.856 }
    "m7i.large"    = { vcpu = 2, memory_gib = 8, ipv4_per_eni = 10, usd_per_hour = 0.1008 }
    "m7i.xlarge"   = { vcpu = 4, memory_gib = 16, ipv4_per_eni = 15, usd_per_hour = 0.2016 }
    "m7i.2xlarge"  = { vcpu = 8, memory_gib = 32, ipv4_per_eni = 15, usd_per_hour = 0.4032 }
    "m7i.4xlarge"  = { vcpu = 16, memory_gib = 64, ipv4_per_eni = 30, usd_per_hour = 0.8064 }
    "m7i.8xlarge"  = { vcpu = 32, memory_gib = 128, ipv4_per_eni = 30, usd_per_hour = 1.6128 }
    "r7i.2xlarge"  = { vcpu = 8, memory_gib = 64, ipv4_per_eni = 15, usd_per_hour = 0.5292 }
    "r7i.4xlarge"  = { vcpu = 16, memory_gib = 128, ipv4_per_eni = 30, usd_per_hour = 1.0584 }
    "c6i.xlarge"   = { vcpu = 4, memory_gib = 8, ipv4_per_eni = 15, usd_per_hour = 0.17 }
    "c6i.2xlarge"  = { vcpu = 8, memory_gib = 16, ipv4_per_eni = 15, usd_per_hour = 0.34 }
    "c6i.4xlarge"  = { vcpu = 16, memory_gib = 32, ipv4_per_eni = 30, usd_per_hour = 0.68 }
    "c6i.8xlarge"  = { vcpu = 32, memory_gib = 64, ipv4_per_eni = 30, usd_per_hour = 1.36 }
    "t3.large"     = { vcpu = 2, memory_gib = 8, ipv4_per_eni = 12, usd_per_hour = 0.0832 }
    "t3.xlarge"    = { vcpu = 4, memory_gib = 16, ipv4_per_eni = 15, usd_per_hour = 0.1664 }
  }

  # A type the table lacks gets zeros, so every check on it fails with a
  # message naming the table instead of an obscure lookup error.
  unknown_type = { vcpu = 0, memory_gib = 0, ipv4_per_eni = 0, usd_per_hour = 0 }
  types = {
    server     = lookup(local.instance_types, var.server_instance_type, local.unknown_type)
    agent      = lookup(local.instance_types, var.agent_instance_type, local.unknown_type)
    monitoring = lookup(local.instance_types, var.monitoring_instance_type, local.unknown_type)
  }
}
