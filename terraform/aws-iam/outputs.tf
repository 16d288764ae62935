output "role_arn" {
  description = "ARN of the controller's role. With IRSA, put it in the ServiceAccount annotation eks.amazonaws.com/role-arn (deploy/overlays/eks)."
  value       = aws_iam_role.controller.arn
}

output "role_name" {
  description = "Name of the controller's role."
  value       = aws_iam_role.controller.name
}

output "policy_arn" {
  description = "ARN of the managed policy attached to the role."
  value       = aws_iam_policy.controller.arn
}

output "pod_identity_association_id" {
  description = "ID of the EKS Pod Identity association (null without pod_identity)."
  value       = var.pod_identity ? aws_eks_pod_identity_association.controller[0].association_id : null
}

output "service_account_annotations" {
  description = "Annotations for the controller's ServiceAccount: the IRSA role ARN when IRSA is on; empty for Pod Identity only (it needs none)."
  value       = var.irsa_oidc_provider_arn == null ? {} : { "eks.amazonaws.com/role-arn" = aws_iam_role.controller.arn }
}
