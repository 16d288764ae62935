variable "name" {
  description = "Name of the IAM role and policy."
  type        = string
  default     = "cloudgate-controller"
}

variable "cluster_name" {
  description = "EKS cluster name: the Pod Identity association is made in this cluster."
  type        = string
}

variable "namespace" {
  description = "Namespace of the controller's ServiceAccount (deploy/base uses cloudgate-system)."
  type        = string
  default     = "cloudgate-system"
}

variable "service_account" {
  description = "Name of the controller's ServiceAccount (deploy/base uses cloudgate)."
  type        = string
  default     = "cloudgate"
}

variable "providers_enabled" {
  description = "Which cloudgate providers this role serves: any of \"aws-alb\", \"aws-lattice\". Only their statements of policy.json are attached."
  type        = list(string)
  default     = ["aws-alb", "aws-lattice"]
  validation {
    condition     = length(var.providers_enabled) > 0 && alltrue([for p in var.providers_enabled : contains(["aws-alb", "aws-lattice"], p)])
    error_message = "providers_enabled takes \"aws-alb\" and/or \"aws-lattice\"."
  }
}

variable "pod_identity" {
  description = "Trust EKS Pod Identity (pods.eks.amazonaws.com) and create the association for namespace/service_account. Needs the eks-pod-identity-agent add-on."
  type        = bool
  default     = true
}

variable "irsa_oidc_provider_arn" {
  description = "IAM OIDC provider ARN of the cluster (aws_iam_openid_connect_provider) to trust through IRSA; null disables IRSA. Both mechanisms may be on during a migration."
  type        = string
  default     = null
}

variable "permissions_boundary" {
  description = "Optional permissions boundary ARN for the role."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for the IAM role, policy and Pod Identity association."
  type        = map(string)
  default     = {}
}
