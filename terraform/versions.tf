terraform {
  # 1.9: variable validations that check files (binaries_dir). Written and
  # checked offline with terraform 1.11.
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.5, < 4.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project   = "wslab"
      Lab       = var.lab_name
      ManagedBy = "terraform"
    }
  }
}
