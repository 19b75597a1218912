# No provider here, on purpose: everything in this module is arithmetic and
# text, so `terraform test` proves it on a machine that cannot download
# providers.
terraform {
  required_version = ">= 1.6"
}
