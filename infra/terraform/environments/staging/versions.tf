terraform {
  required_version = ">= 1.6.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 8.7"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 8.7"
    }
  }

  # State lives in a versioned bucket created once by hand (see
  # docs/runbooks/first-deploy.md, "Bootstrap"). The bucket name is supplied at init:
  #   terraform init -backend-config=backend.hcl
  backend "gcs" {
    prefix = "genx-shop/staging"
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}
