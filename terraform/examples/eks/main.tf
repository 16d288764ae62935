# cloudgate IAM on an existing EKS cluster: Pod Identity (recommended) and, optionally, IRSA.
#
#   terraform init && terraform apply -var cluster_name=my-cluster -var region=us-east-1
#
# Then install cloudgate with deploy/overlays/eks (docs/install-eks.md). With Pod Identity the
# ServiceAccount needs no annotation; with IRSA put output.role_arn in
# eks.amazonaws.com/role-arn.

terraform {
  required_version = ">= 1.5.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.30"
    }
  }
}

variable "region" {
  description = "AWS region of the cluster."
  type        = string
}

variable "cluster_name" {
  description = "Name of the EKS cluster."
  type        = string
}

variable "use_irsa" {
  description = "Also trust the cluster's IAM OIDC provider (IRSA), e.g. during a migration to Pod Identity."
  type        = bool
  default     = false
}

provider "aws" {
  region = var.region
}

data "aws_eks_cluster" "this" {
  name = var.cluster_name
}

data "aws_iam_openid_connect_provider" "this" {
  count = var.use_irsa ? 1 : 0
  url   = data.aws_eks_cluster.this.identity[0].oidc[0].issuer
}

# Pod Identity needs this add-on on the cluster (skip if it is managed elsewhere).
resource "aws_eks_addon" "pod_identity_agent" {
  cluster_name = var.cluster_name
  addon_name   = "eks-pod-identity-agent"
}

module "cloudgate_iam" {
  source = "../../aws-iam"

  cluster_name           = var.cluster_name
  name                   = "cloudgate-${var.cluster_name}"
  providers_enabled      = ["aws-alb", "aws-lattice"]
  pod_identity           = true
  irsa_oidc_provider_arn = var.use_irsa ? data.aws_iam_openid_connect_provider.this[0].arn : null
  tags = {
    "cloudgate.io/cluster" = var.cluster_name
  }

  depends_on = [aws_eks_addon.pod_identity_agent]
}

output "role_arn" {
  description = "The controller's IAM role."
  value       = module.cloudgate_iam.role_arn
}

output "service_account_annotations" {
  description = "Annotations for the cloudgate ServiceAccount (empty with Pod Identity only)."
  value       = module.cloudgate_iam.service_account_annotations
}
