# cloudgate IAM on an existing GKE cluster with Workload Identity enabled.
#
#   terraform init && terraform apply -var project_id=my-project
#
# Then install cloudgate with deploy/overlays/gke (docs/install-gke.md), the ServiceAccount
# annotated with output.service_account_email.

terraform {
  required_version = ">= 1.5.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0"
    }
  }
}

variable "project_id" {
  description = "Project of the cluster and of the load balancers."
  type        = string
}

provider "google" {
  project = var.project_id
}

# The Compute API must be on for the load balancers (and IAM for the custom role).
resource "google_project_service" "compute" {
  project            = var.project_id
  service            = "compute.googleapis.com"
  disable_on_destroy = false
}

module "cloudgate_iam" {
  source = "../../gcp-iam"

  project_id      = var.project_id
  namespace       = "cloudgate-system"
  service_account = "cloudgate"

  depends_on = [google_project_service.compute]
}

output "service_account_email" {
  description = "Put this in the iam.gke.io/gcp-service-account annotation."
  value       = module.cloudgate_iam.service_account_email
}

output "service_account_annotations" {
  description = "Annotations for the cloudgate ServiceAccount."
  value       = module.cloudgate_iam.service_account_annotations
}
