locals {
  monitoring_ip = aws_instance.node[module.plan.hostnames.monitoring].public_ip
  scenario_file = module.plan.scenario.file
}

output "grafana_url" {
  description = "Grafana (dashboards open to viewers from admin_cidr; admin password: grafana_admin_password_command)."
  value       = "http://${local.monitoring_ip}:3000/"
}

output "prometheus_url" {
  description = "Prometheus (from admin_cidr): Status > Targets lists server, agents, coordinator and node."
  value       = "http://${local.monitoring_ip}:9090/"
}

output "ssh_monitoring" {
  description = "SSH to the monitoring node, where the coordinator runs."
  value       = "ssh ubuntu@${local.monitoring_ip}"
}

output "ssh_server" {
  description = "SSH to the chat server."
  value       = "ssh ubuntu@${aws_instance.node[module.plan.hostnames.server].public_ip}"
}

output "ssh_agents" {
  description = "SSH to each agent."
  value       = [for a in module.plan.addresses.agents : "ssh ubuntu@${aws_instance.node[a.name].public_ip}"]
}

output "wait_until_ready" {
  description = "Returns once the monitoring node finished its set-up (the agents and the server boot in parallel, in about the same time)."
  value       = "ssh ubuntu@${local.monitoring_ip} cloud-init status --wait"
}

output "coordinator_command" {
  description = "The run: the generated scenario against this lab's server and agents, with live figures for Prometheus. Run it inside tmux (README)."
  value       = "ssh -t ubuntu@${local.monitoring_ip} sudo wslab-env coordinator run scenarios/${local.scenario_file} --metrics-listen 0.0.0.0:9095"
}

output "scenario_path" {
  description = "The scenario written for this lab's agents, on the monitoring node."
  value       = "/opt/wslab/scenarios/${local.scenario_file}"
}

output "scenario_yaml" {
  description = "Its text: the agents' control addresses and their source addresses."
  value       = module.plan.scenario.yaml
}

output "fetch_results" {
  description = "Copies every run's results.json and report.html here."
  value       = "scp -r ubuntu@${local.monitoring_ip}:/opt/wslab/results ./results-${var.lab_name}"
}

output "grafana_admin_password_command" {
  description = "Prints Grafana's admin password (from SSM Parameter Store)."
  value       = "aws ssm get-parameter --region ${var.region} --name ${local.grafana_password_parameter_name} --with-decryption --query Parameter.Value --output text"
}

output "sizing" {
  description = "The sizing behind this lab: ports, memory and CPU per connection and per agent, estimated cost per hour."
  value       = module.plan.sizing
}

output "sizing_ok" {
  description = "true: the sizing check passed (planning fails otherwise, unless enforce_sizing = false)."
  value       = module.plan.sizing_gate
}

output "availability_zone" {
  description = "Where the lab runs."
  value       = aws_subnet.lab.availability_zone
}
