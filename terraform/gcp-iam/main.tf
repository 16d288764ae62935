# IAM for the cloudgate controller on Google Cloud: a service account, a custom role with exactly
# the Compute permissions the gcp provider uses (permissions.json, checked against the test
# ground's GCE call log by tests/install/iam_coverage.py), the role granted on the project, and
# Workload Identity so the Kubernetes ServiceAccount acts as the Google service account.

locals {
  permissions = jsondecode(file("${path.module}/permissions.json"))
  wi_project  = coalesce(var.workload_identity_project_id, var.project_id)
  wi_member   = "serviceAccount:${local.wi_project}.svc.id.goog[${var.namespace}/${var.service_account}]"
}

resource "google_service_account" "controller" {
  project      = var.project_id
  account_id   = var.account_id
  display_name = "cloudgate controller"
  description  = "Used by the cloudgate controller (${var.namespace}/${var.service_account}) through Workload Identity"
}

resource "google_project_iam_custom_role" "controller" {
  project     = var.project_id
  role_id     = var.role_id
  title       = "cloudgate controller"
  description = "Compute permissions the cloudgate gcp provider uses: load balancers, NEGs, certificates, firewall rules"
  permissions = local.permissions
  stage       = "GA"
}

resource "google_project_iam_member" "controller" {
  project = var.project_id
  role    = google_project_iam_custom_role.controller.name
  member  = "serviceAccount:${google_service_account.controller.email}"
}

# The Kubernetes ServiceAccount may act as the Google service account.
resource "google_service_account_iam_member" "workload_identity" {
  service_account_id = google_service_account.controller.name
  role               = "roles/iam.workloadIdentityUser"
  member             = local.wi_member
}
