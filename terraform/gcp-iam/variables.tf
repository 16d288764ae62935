variable "project_id" {
  description = "Project the load balancers are created in (and where the service account lives)."
  type        = string
}

variable "workload_identity_project_id" {
  description = "Project of the GKE cluster (its workload identity pool is PROJECT.svc.id.goog). Defaults to project_id."
  type        = string
  default     = null
}

variable "account_id" {
  description = "account_id of the Google service account (6-30 characters)."
  type        = string
  default     = "cloudgate-controller"
}

variable "role_id" {
  description = "ID of the custom role (letters, digits, underscores, periods)."
  type        = string
  default     = "cloudgateController"
}

variable "namespace" {
  description = "Namespace of the controller's Kubernetes ServiceAccount (deploy/base uses cloudgate-system)."
  type        = string
  default     = "cloudgate-system"
}

variable "service_account" {
  description = "Name of the controller's Kubernetes ServiceAccount (deploy/base uses cloudgate)."
  type        = string
  default     = "cloudgate"
}
