# What the instances install, uploaded to a private bucket they read with
# their instance profile: the binaries the user built, the repo's
# scenarios, Prometheus rule files and Grafana dashboards as they are.

resource "aws_s3_bucket" "artifacts" {
  bucket_prefix = "${var.lab_name}-artifacts-"
  # Holds only copies of local files: `terraform destroy` may empty it.
  force_destroy = true
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

locals {
  repo_root    = "${path.module}/.."
  binaries_dir = startswith(var.binaries_dir, "/") ? var.binaries_dir : "${path.module}/${var.binaries_dir}"

  uploads = merge(
    { for b in ["server", "loadgen", "coordinator"] : "bin/${b}" => "${local.binaries_dir}/${b}" },
    { for f in fileset("${local.repo_root}/scenarios", "*.yaml") : "scenarios/${f}" => "${local.repo_root}/scenarios/${f}" },
    # prometheus.yml is the compose lab's; the cloud lab writes its own.
    { for f in fileset("${local.repo_root}/prometheus", "*.yml") : "prometheus/${f}" => "${local.repo_root}/prometheus/${f}" if f != "prometheus.yml" },
    { for f in fileset("${local.repo_root}/grafana/dashboards", "*.json") : "grafana/dashboards/${f}" => "${local.repo_root}/grafana/dashboards/${f}" },
  )
  upload_md5 = { for key, path in local.uploads : key => filemd5(path) }

  # Goes into every user data: new binaries or files mean new instances.
  artifacts_version = substr(sha256(jsonencode(local.upload_md5)), 0, 16)
}

resource "aws_s3_object" "artifact" {
  for_each = local.uploads

  bucket      = aws_s3_bucket.artifacts.id
  key         = each.key
  source      = each.value
  source_hash = local.upload_md5[each.key]
}
