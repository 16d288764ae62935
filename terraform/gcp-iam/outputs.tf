output "service_account_email" {
  description = "Email of the Google service account; put it in the ServiceAccount annotation iam.gke.io/gcp-service-account (deploy/overlays/gke)."
  value       = google_service_account.controller.email
}

output "custom_role_id" {
  description = "Full ID of the custom role (projects/PROJECT/roles/ROLE)."
  value       = google_project_iam_custom_role.controller.name
}

output "workload_identity_member" {
  description = "The Workload Identity principal granted roles/iam.workloadIdentityUser."
  value       = local.wi_member
}

output "service_account_annotations" {
  description = "Annotations for the controller's Kubernetes ServiceAccount."
  value       = { "iam.gke.io/gcp-service-account" = google_service_account.controller.email }
}
