# IAM for the cloudgate controller: one policy with exactly the calls the providers make
# (policy.json, checked against the test ground's call logs by tests/install/iam_coverage.py)
# and one role that the controller's ServiceAccount assumes through EKS Pod Identity and/or IRSA.

locals {
  policy_document = jsondecode(file("${path.module}/policy.json"))

  # Statement Sids start with the provider they serve: Alb* -> aws-alb, Lattice* -> aws-lattice.
  sid_prefix = { "aws-alb" = "Alb", "aws-lattice" = "Lattice" }
  statements = [
    for s in local.policy_document.Statement : s
    if anytrue([for p in var.providers_enabled : startswith(s.Sid, local.sid_prefix[p])])
  ]

  # issuer host/path of the OIDC provider, e.g. oidc.eks.us-east-1.amazonaws.com/id/ABC...
  oidc_issuer = var.irsa_oidc_provider_arn == null ? null : element(split("oidc-provider/", var.irsa_oidc_provider_arn), 1)
}

data "aws_iam_policy_document" "trust" {
  dynamic "statement" {
    for_each = var.pod_identity ? [1] : []
    content {
      sid     = "EksPodIdentity"
      effect  = "Allow"
      actions = ["sts:AssumeRole", "sts:TagSession"]
      principals {
        type        = "Service"
        identifiers = ["pods.eks.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = local.oidc_issuer == null ? [] : [local.oidc_issuer]
    content {
      sid     = "Irsa"
      effect  = "Allow"
      actions = ["sts:AssumeRoleWithWebIdentity"]
      principals {
        type        = "Federated"
        identifiers = [var.irsa_oidc_provider_arn]
      }
      condition {
        test     = "StringEquals"
        variable = "${statement.value}:sub"
        values   = ["system:serviceaccount:${var.namespace}:${var.service_account}"]
      }
      condition {
        test     = "StringEquals"
        variable = "${statement.value}:aud"
        values   = ["sts.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role" "controller" {
  name                 = var.name
  description          = "cloudgate controller (${var.namespace}/${var.service_account}) in EKS cluster ${var.cluster_name}"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  permissions_boundary = var.permissions_boundary
  tags                 = var.tags

  lifecycle {
    precondition {
      condition     = var.pod_identity || var.irsa_oidc_provider_arn != null
      error_message = "Enable pod_identity or set irsa_oidc_provider_arn: otherwise nothing can assume the role."
    }
  }
}

resource "aws_iam_policy" "controller" {
  name        = var.name
  description = "What the cloudgate controller calls (${join(", ", var.providers_enabled)})"
  policy      = jsonencode({ Version = local.policy_document.Version, Statement = local.statements })
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "controller" {
  role       = aws_iam_role.controller.name
  policy_arn = aws_iam_policy.controller.arn
}

resource "aws_eks_pod_identity_association" "controller" {
  count           = var.pod_identity ? 1 : 0
  cluster_name    = var.cluster_name
  namespace       = var.namespace
  service_account = var.service_account
  role_arn        = aws_iam_role.controller.arn
  tags            = var.tags
}
